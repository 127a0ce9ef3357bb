"""A nested config as flat dotted keys, the one way resexp flattens (config checks, run records, reports)."""


def flatten(tree, prefix: str = "", lists: bool = False) -> dict:
    """{'model.name': 'plain', 'depth': 20, ...} of a nested dict; with `lists`, list items too, by index
    ('optimizer.betas.0': 0.9), else a list is one value."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if lists and isinstance(tree, list) else None
    if items is None:
        return {prefix[:-1]: tree} if prefix else tree
    flat = {}
    for key, value in items:
        if isinstance(value, dict) or lists and isinstance(value, list):
            flat.update(flatten(value, f"{prefix}{key}.", lists))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
