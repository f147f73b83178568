"""Training-time activations and losses of each SAE architecture (the inference forms live in ``model``).

* ReLU + L1 (compendium 3.2): ``||x - x_hat||^2 + lambda * sum_i f_i`` with unit-norm decoder rows.
* TopK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): keep the k largest
  pre-activations; auxiliary loss ``aux_coeff * ||e - e_hat_dead||^2`` where ``e = x - x_hat``
  (detached) and ``e_hat_dead`` decodes the top ``k_aux`` pre-activations of the dead latents alone.
* BatchTopK (Bussmann et al. 2024): keep the ``k * batch`` largest ReLU activations of the whole
  batch; a threshold ``theta`` tracks (EMA) the smallest kept activation, and the SAE is saved as
  a JumpReLU with that threshold.
* JumpReLU (Rajamanoharan et al. 2024): ``f = pre * H(pre - theta)``, loss ``||x - x_hat||^2 +
  lambda_0 * sum_i H(pre_i - theta_i)``; ``theta = exp(log_theta)`` is learned through
  straight-through estimators with a rectangle kernel of width ``bandwidth``:
  ``d/dtheta H(z - theta) = -K((z - theta)/eps)/eps`` and ``d/dtheta JumpReLU(z) = -(theta/eps) K(.)``.

Every loss is a sum over the rows this process holds divided by the *global* batch size, so
data-parallel ranks that all-reduce (sum) their gradients reproduce one process exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _kernel(u: Tensor) -> Tensor:
    return (u.abs() < 0.5).to(u.dtype)


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        g_theta = -(1.0 / eps) * _kernel((z - theta) / eps) * grad
        return None, g_theta.reshape(-1, theta.shape[-1]).sum(0), None


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        g_z = (z > theta).to(z.dtype) * grad
        g_theta = -(theta / eps) * _kernel((z - theta) / eps) * grad
        return g_z, g_theta.reshape(-1, theta.shape[-1]).sum(0), None


def step_ste(z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
    """Heaviside ``H(z - theta)`` with the straight-through gradient for ``theta``."""
    return _Step.apply(z, theta, bandwidth)  # type: ignore[no-any-return]


def jumprelu_ste(z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
    """``z * H(z - theta)`` with the straight-through gradient for ``theta``."""
    return _JumpReLU.apply(z, theta, bandwidth)  # type: ignore[no-any-return]


def topk_acts(pre: Tensor, k: int) -> Tensor:
    """ReLU of the ``k`` largest pre-activations of each row, zeros elsewhere."""
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())


def batch_threshold(acts: Tensor, n_keep: int, gather: Any = None) -> Tensor:
    """The ``n_keep``-th largest value of ``acts`` over the whole (possibly sharded) batch.

    ``gather(t) -> list[Tensor]`` collects a tensor from every rank (``None``: one process).
    """
    flat = acts.detach().flatten()
    local = flat.topk(min(n_keep, flat.numel())).values
    pool = torch.cat(gather(local)) if gather is not None else local
    return pool.topk(min(n_keep, pool.numel())).values[-1]


def mse_sum(x: Tensor, x_hat: Tensor) -> Tensor:
    """Sum over rows of the per-row mean squared error (divide by the global batch size)."""
    return (x - x_hat).pow(2).mean(-1).sum()


def aux_topk_loss(pre: Tensor, err: Tensor, w_dec: Tensor, dead: Tensor, k_aux: int) -> Tensor:
    """Sum over rows of ``||e - e_hat_dead||^2 / d`` (Gao et al.'s auxiliary loss; zero with no dead latents)."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre.new_zeros(())
    masked = pre.masked_fill(~dead, float("-inf"))
    f_aux = topk_acts(masked, min(k_aux, n_dead)).nan_to_num(0.0)
    e_hat = f_aux @ w_dec
    return (err.detach() - e_hat).pow(2).mean(-1).sum()
