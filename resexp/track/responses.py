"""Layer responses (He et al. 2015, Fig. 7): the std of each conv layer's output after its norm layer,
before the nonlinearity and before any shortcut addition, on a batch of test images."""
import json

import torch

from ..models.norms import NORM_LAYERS
from ..models.parts import main_path

RESPONSES_FILE = "responses.json"
RESPONSE_IMAGES = 500  # the first test images, one batch: stds of 500 x C x H x W values each


@torch.no_grad()
def response_stds(model, x) -> dict:
    """{"layers": [norm module names, input to output], "std": [std of each one's output]}."""
    names, outputs, hooks = [], [], []
    for name, module in main_path(model, NORM_LAYERS):  # not the norms of projection shortcuts
        names.append(name)
        hooks.append(module.register_forward_hook(lambda m, inputs, out: outputs.append(out.std())))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return {"layers": names, "std": torch.stack(outputs).tolist() if outputs else []}  # linear_deep has no norm


def write_responses(run_dir, model, x) -> None:
    (run_dir / RESPONSES_FILE).write_text(json.dumps(response_stds(model, x)) + "\n")


def read_responses(run_dir) -> dict | None:
    path = run_dir / RESPONSES_FILE
    return json.loads(path.read_text()) if path.exists() else None
