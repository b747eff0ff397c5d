"""Two-headed encoder (paper III-B a) and the decoder back to spot space.

Genes are the samples: head ``e1`` reads a gene's vector over the p spots, head ``e2`` its
vector over the q cells (or metacells). Both heads feed one shared trunk into a latent of
size d, so the two modalities land in the same space. The encoder is variational (mean and
log-variance, reparameterised) or deterministic: the paper's "encoder variation" ablation.
The decoder maps a latent back to the p spots; its output is unbounded (the public code's
sigmoid capped predictions at 1 while log-normalized values reach about 9).
"""

from __future__ import annotations

import torch
from torch import nn


def _head(n_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LayerNorm(hidden), nn.GELU())


class TwoHeadedEncoder(nn.Module):
    """``e1``: R^p -> R^d for ST vectors, ``e2``: R^q -> R^d for scRNA-seq vectors."""

    def __init__(self, n_spots: int, n_cells: int, latent_dim: int, hidden: int, *, variational: bool = True):
        super().__init__()
        self.variational = variational
        self.e1 = _head(n_spots, hidden)
        self.e2 = _head(n_cells, hidden)
        self.trunk = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU())
        self.to_mean = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim) if variational else None

    def _latent(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.trunk(h)
        mean = self.to_mean(h)
        logvar = self.to_logvar(h).clamp(-10.0, 10.0) if self.variational else None
        return mean, logvar

    def encode_st(self, x_st: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(genes, p) -> latent mean and log-variance (None when deterministic)."""
        return self._latent(self.e1(x_st))

    def encode_sc(self, x_sc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(genes, q) -> latent mean and log-variance (None when deterministic)."""
        return self._latent(self.e2(x_sc))


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor | None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A posterior draw ``mean + sigma * eps``; the mean itself for a deterministic encoder."""
    if logvar is None:
        return mean
    eps = torch.randn(mean.shape, generator=generator, device="cpu").to(mean.device, mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) averaged over genes and latent entries; 0 for a deterministic encoder."""
    if logvar is None:
        return mean.new_zeros(())
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class Decoder(nn.Module):
    """Latent (d) -> a gene's vector over the p spots, on the log-normalized scale."""

    def __init__(self, latent_dim: int, hidden: int, n_spots: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_spots))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
