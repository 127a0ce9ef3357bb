"""The Hessian H of a net's loss, seen only through Hessian-vector products (never the n x n matrix):
its largest eigenvalue by Lanczos, its trace by Hutchinson's estimator.

A product H v is torch.func's forward-over-reverse: the directional derivative (jvp) of the gradient
(grad) along v, one forward and one backward pass carrying tangents, about the cost of two or three
training steps. Vectors are flat float tensors over the parameters in `named_parameters` order.
"""
import math
from typing import Callable

import torch
from torch.func import functional_call, grad, jvp


def hvp_operator(model, losses) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """(v -> H v, n) at the model's current parameters, H the Hessian of sum(loss(out) for loss, input in
    `losses`) where out = model(input): `losses` is a list of (input, loss of the output) pairs, one per batch,
    so that one batch's graph is held at a time. Buffers are held fixed (read as they are)."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]

    def apply(v: torch.Tensor) -> torch.Tensor:
        tangent = {k: t.view(s) for k, t, s in zip(names, v.split(sizes), shapes)}
        total = torch.zeros_like(v)
        for inputs, loss in losses:
            def batch_loss(p, inputs=inputs, loss=loss):
                return loss(functional_call(model, (p, buffers), (inputs,)))
            _, hv = jvp(grad(batch_loss), (params,), (tangent,))
            total += torch.cat([hv[k].reshape(-1) for k in names])
        return total

    return apply, sum(sizes)


def lanczos_top(apply, n: int, steps: int, generator: torch.Generator, tol: float = 1e-3,
                device="cpu", tick=lambda: None) -> dict:
    """The largest (algebraic) eigenvalue of the symmetric operator `apply` on R^n, by Lanczos with full
    reorthogonalization from a random unit start: after k products the largest eigenvalue theta of the
    k x k tridiagonal matrix T_k (a Ritz value) approaches it from below. Stops when the Ritz vector's
    residual |H y - theta y| = beta_k |s_k| (s: T_k's eigenvector, beta_k the next off-diagonal) is at most
    tol * |theta|, or after `steps` products. H then has an eigenvalue within `residual` of theta (a
    symmetric matrix's eigenvalue lies within any Ritz pair's residual of it); that it is the largest one
    is what Lanczos finds unless the random start is nearly orthogonal to its eigenvector."""
    q = torch.randn(n, generator=generator, dtype=torch.float32).to(device)
    basis = [q / q.norm()]
    alphas, betas = [], []
    for k in range(1, min(steps, n) + 1):
        w = apply(basis[-1])
        tick()
        alphas.append(torch.dot(w, basis[-1]).item())
        Q = torch.stack(basis)
        for _ in range(2):  # Gram-Schmidt twice: in float32 once leaves the basis visibly non-orthogonal
            w = w - Q.T @ (Q @ w)
        beta = w.norm().item()
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        values, vectors = torch.linalg.eigh(T)
        theta, residual = values[-1].item(), beta * abs(vectors[-1, -1].item())
        if residual <= tol * abs(theta) or beta <= 1e-12 * max(abs(theta), 1e-30) or k == min(steps, n):
            return {"eigenvalue": theta, "residual": residual, "steps": k}
        betas.append(beta)
        basis.append(w / beta)
    raise AssertionError("unreachable")


def hutchinson_trace(apply, n: int, probes: int, generator: torch.Generator, device="cpu",
                     tick=lambda: None) -> dict:
    """Hutchinson's estimate of trace(H): the mean of z^T H z over `probes` Rademacher vectors z (entries
    +-1, so E[z z^T] = I and E[z^T H z] = trace(H)), with its standard error, the probes' standard
    deviation over sqrt(probes) (None for one probe). Rademacher probes have the least variance of the
    unbiased choices: 2 * (sum of H's squared off-diagonal entries) per probe (Hutchinson 1990)."""
    samples = []
    for _ in range(probes):
        z = (torch.randint(0, 2, (n,), generator=generator) * 2 - 1).to(device=device, dtype=torch.float32)
        samples.append(torch.dot(z, apply(z)).item())
        tick()
    s = torch.tensor(samples, dtype=torch.float64)
    se = s.std().item() / math.sqrt(probes) if probes > 1 else None
    return {"trace": s.mean().item(), "se": se, "samples": samples}
