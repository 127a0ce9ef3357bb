"""resexp's Hydra configs. Hydra imports this package to find them; it registers what they need first."""
from resexp.config import register

register()
