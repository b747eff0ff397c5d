"""Gaussian diffusion on the ST latent (paper eq. 1-3): cosine schedule, three targets, samplers.

One parameterisation everywhere: whatever the network is trained to predict, the sampler reads
its output as that same quantity (the public code trained on noise and sampled as if the output
were the clean sample). Targets (``prediction``):

- ``"eps"``: the noise, as the paper says; at low signal-to-noise the clean estimate derived
  from it amplifies any error of the prediction enormously.
- ``"v"``: the velocity (Salimans & Ho 2022), the default: both estimates are bounded
  combinations of ``x`` and the output at every noise level, so nothing is amplified.
- ``"x0"``: the clean latent itself.

The loss (MSE plus Huber) is on the chosen target; a safety clip of the clean estimate stays,
and :meth:`GaussianDiffusion.sample` reports how much it touched. Samplers (paper Table II):
``"ddpm"`` (ancestral; fewer steps respaced to keep the kept timesteps' cumulative alphas) and
``"ddim"`` (deterministic). Numbers behind the choice of ``v``: docs/method-notes.md.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

SAMPLERS = ("ddpm", "ddim")
PREDICTIONS = ("eps", "v", "x0")


def cosine_schedule(n_steps: int, *, offset: float = 0.008, max_beta: float = 0.999) -> tuple[torch.Tensor, torch.Tensor]:
    """Betas and cumulative alphas (float64) of the cosine schedule; alpha-bar decreases in (0, 1)."""
    def f(u: float) -> float:
        return math.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - f((i + 1) / n_steps) / f(i / n_steps), max_beta) for i in range(n_steps)], dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, dim=0)


def spaced_timesteps(n_steps: int, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced timesteps counting down from T - 1, ascending.

    When a whole stride n gives exactly ``steps`` timesteps (``steps = ceil(T / n)``), this is
    every n-th timestep ending at T - 1: the paper's fractional 1/n T schedules, e.g.
    T = 2000 with 667 steps keeps 1, 4, ..., 1999 (n = 3) and with 500 keeps 3, 7, ..., 1999.
    Otherwise the stride is T / steps, rounded down at each step.
    """
    if not 1 <= steps <= n_steps:
        raise ValueError(f"the number of sampling steps must be in [1, {n_steps}], got {steps}")
    stride = round(n_steps / steps)
    if stride >= 1 and math.ceil(n_steps / stride) == steps:
        return torch.arange(n_steps - 1, -1, -stride).flip(0)
    j = torch.arange(steps, dtype=torch.float64)
    return (n_steps - 1 - torch.floor(j * n_steps / steps)).long().flip(0)


def target_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    huber_weight: float = 1.0,
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """MSE plus a Huber term on the diffusion target, averaged per token then over tokens.

    ``weights`` (broadcastable to (B, n_tokens)) gives per-token AR loss weights; the result
    is the weighted mean, so the weights change emphasis, not the loss scale.
    """
    per_token = F.mse_loss(pred, target, reduction="none").mean(-1)
    if huber_weight:
        per_token = per_token + huber_weight * F.huber_loss(pred, target, reduction="none", delta=huber_delta).mean(-1)
    if weights is None:
        return per_token.mean()
    weights = weights.expand_as(per_token)
    return (per_token * weights).sum() / weights.sum()


class GaussianDiffusion:
    """Forward noising and the reverse samplers for a given number of timesteps T."""

    def __init__(self, n_steps: int = 2000, *, prediction: str = "v"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown diffusion target {prediction!r}; choose one of {PREDICTIONS}")
        self.n_steps, self.prediction = n_steps, prediction
        self.betas, self.alphas_cumprod = cosine_schedule(n_steps)
        self.last_clipped_fraction = 0.0

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod.to(like.device)[t].to(like.dtype).unsqueeze(-1)

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the network learns to output for ``x_t = q_sample(x0, t, noise)``."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        abar = self._abar(t, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def split_output(self, output: torch.Tensor, x: torch.Tensor, a_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 estimate, eps estimate) from the network output at a noise level with alpha-bar ``a_t``."""
        if self.prediction == "eps":
            return (x - math.sqrt(1 - a_t) * output) / math.sqrt(a_t), output
        if self.prediction == "x0":
            return output, (x - math.sqrt(a_t) * output) / math.sqrt(1 - a_t)
        return math.sqrt(a_t) * x - math.sqrt(1 - a_t) * output, math.sqrt(1 - a_t) * x + math.sqrt(a_t) * output

    def sample_timesteps(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.n_steps, shape, generator=generator)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, with t shaped like x0 minus its last dim."""
        abar = self._abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def timesteps(self, sampler: str, steps: int | None) -> torch.Tensor:
        """The timesteps a sampler visits: all T for ``ddpm`` without ``steps``, else ``steps`` spaced."""
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
        if steps is None:
            if sampler == "ddim":
                raise ValueError("the ddim sampler needs a number of steps")
            steps = self.n_steps
        return spaced_timesteps(self.n_steps, steps)

    @torch.no_grad()
    def sample(
        self,
        denoise: Callable[[torch.Tensor, int], torch.Tensor],
        shape: tuple[int, ...],
        *,
        sampler: str = "ddim",
        steps: int | None = 50,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        clip: float | None = None,
    ) -> torch.Tensor:
        """Run the reverse chain from pure noise; ``denoise(x_t, t)`` returns the network output.

        Noise is drawn from ``generator`` on the CPU, so a seed gives the same samples on any device.
        ``last_clipped_fraction`` is set to the share of clean-estimate entries the clip changed,
        over all steps.
        """
        eta = 1.0 if sampler == "ddpm" else 0.0
        timesteps = self.timesteps(sampler, steps).tolist()
        abar = self.alphas_cumprod.tolist()
        x = torch.randn(shape, generator=generator).to(device)
        clipped, seen = 0, 0
        for i in range(len(timesteps) - 1, -1, -1):
            t = timesteps[i]
            a_t = abar[t]
            a_prev = abar[timesteps[i - 1]] if i > 0 else 1.0
            x0, eps = self.split_output(denoise(x, t).float(), x, a_t)
            if clip is not None:
                outside = x0.abs() > clip
                clipped, seen = clipped + int(outside.sum()), seen + outside.numel()
                if outside.any():
                    x0 = x0.clamp(-clip, clip)
                    eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
            self.last_clipped_fraction = clipped / seen if seen else 0.0
            if i == 0:
                return x0
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(shape, generator=generator).to(device)
        return x
