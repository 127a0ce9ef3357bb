"""Activation registry: name -> nn.Module class.

Each block builds its own instances (PReLU and learned_swish have parameters, so instances are never
shared). Classes in PER_CHANNEL take the number of channels they act on.
"""
import torch
from torch import nn


class LearnedSwish(nn.Module):
    """x * sigmoid(beta * x) with a learned beta per channel, starting at 1 (SiLU); Ramachandran et al.
    2017, "Searching for Activation Functions" (Swish-beta). beta -> 0 gives x/2, beta -> inf ReLU."""

    def __init__(self, channels: int, beta: float = 1.0):
        super().__init__()
        self.beta = nn.Parameter(torch.full((channels,), beta))

    def forward(self, x):
        beta = self.beta.view(1, -1, *([1] * (x.dim() - 2)))
        return x * torch.sigmoid(beta * x)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "prelu": nn.PReLU,
    "learned_swish": LearnedSwish,
}
PER_CHANNEL = {LearnedSwish}


def make_activation(name: str, channels: int) -> nn.Module:
    cls = ACTIVATIONS[name]
    return cls(channels) if cls in PER_CHANNEL else cls()
