"""Evaluation on the test (or validation) split, in the run's precision and layout."""
import torch
import torch.nn.functional as F

from .step import autocast


@torch.no_grad()
def evaluate(model, data, batch_size, split="test", precision="fp32", channels_last=False):
    """(error %, mean loss) on the test (or val) split, in large batches without autograd; one host sync."""
    images, labels = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.eval()
    totals = torch.zeros(2, device=images.device)
    for start in range(0, len(labels), batch_size):
        x = data.normalize(images[start:start + batch_size]).contiguous(memory_format=memory_format)
        y = labels[start:start + batch_size]
        with autocast(x.device, precision):
            out = model(x).float()
        totals += torch.stack([F.cross_entropy(out, y, reduction="sum"), (out.argmax(1) != y).sum()])
    model.train()
    loss_sum, errors = (totals / len(labels)).tolist()
    return 100 * errors, loss_sum
