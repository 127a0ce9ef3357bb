"""`python -m resexp ...`, which is how torchrun starts it: `torchrun --nproc_per_node=2 -m resexp train ...`."""
import sys

from .cli import main

sys.exit(main())
