"""Per-layer gradient norms: one scalar per conv and linear weight, in one batched pass."""
import torch
from torch import nn


class GradNorms:
    """Tags `weight_grad_norm/<NNN>_<layer>`, NNN the layer's zero-padded depth index (so tags sort by depth)."""

    def __init__(self, model: nn.Module):
        layers = [(name, m.weight) for name, m in model.named_modules()
                  if isinstance(m, (nn.Conv2d, nn.Linear))]
        digits = max(3, len(str(len(layers) - 1)))
        self.tags = [f"weight_grad_norm/{i:0{digits}d}_{name}" for i, (name, _) in enumerate(layers)]
        self.weights = [w for _, w in layers]

    def compute(self) -> torch.Tensor:
        """L2 norm of each layer's weight gradient, stacked on the device (no host sync)."""
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        return torch.stack(torch._foreach_norm(grads))
