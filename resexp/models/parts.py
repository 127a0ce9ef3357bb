"""Parts of a net found by their types (residual.Residual units and their shortcuts, gates), never by
attribute names: what describe counts as depth, whose responses are Figure 7's, what a lesion keeps."""
from torch import nn

from .gates import Gate
from .residual import shortcut_of

WEIGHTED = (nn.Conv2d, nn.Linear)


def side_paths(model: nn.Module) -> set[int]:
    """ids of every module off the main path: each residual unit's shortcut (a projection, a padding, a
    scale) and each gate, with everything inside them."""
    side = set()
    for module in model.modules():
        roots = [module] if isinstance(module, Gate) else []
        if shortcut_of(module) is not None:
            roots.append(shortcut_of(module))
        for root in roots:
            side.update(id(m) for m in root.modules())
    return side


def main_path(model: nn.Module, kinds) -> list[tuple[str, nn.Module]]:
    """(name, module) of the modules of `kinds` on the main path, input to output."""
    side = side_paths(model)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds) and id(m) not in side]


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers that count in a net's depth, as the papers count it: not the
    projections of shortcuts (He et al. 2015, Table 1), not the gates of highway units."""
    return main_path(model, WEIGHTED)
