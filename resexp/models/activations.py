"""Activation registry: name -> nn.Module class.

Each block builds its own instances (PReLU has parameters, so instances are never shared).
"""
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "prelu": nn.PReLU,
}


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()
