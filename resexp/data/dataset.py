"""What a dataset is, declared once beside its loader: `Dataset(...)`, one line of the registry
(data/__init__.py DATASETS) names it, and its keys are its YAML file in conf/dataset/ (`dataset=<name>`).
Loading, the input shape (which `resexp describe` needs without any file) and the checks before any work
all read it here."""
from typing import Callable, NamedTuple


def no_check(cfg, files: bool) -> None:
    return None


class Dataset(NamedTuple):
    load: Callable    # cfg -> ((train_x, train_y), (test_x, test_y)): uint8 N x C x H x W images, int64 labels
    shape: Callable   # cfg -> (channels, pixels per side) of its images as loaded, from the config alone
    # (cfg, files) -> None, or a UserError line naming the key or file and the fix; `files`: also look at
    # the files on disk (a sweep's pre-check and `describe` leave them alone)
    check: Callable = no_check
