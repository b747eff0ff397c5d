"""Causality-aware transformer (CAT, paper III-B c-e): predicts the noise of noisy latent tokens.

A gene's ST latent is cut into L tokens (each with a learned positional embedding for its
latent index) and its scRNA-seq latent becomes C condition tokens. The timestep embedding is
added to the noisy tokens only, so with the causal mask the condition and clean tokens' keys
and values do not depend on the noise level and are cached during sampling.

``aligned_condition=True`` (our addition; off in the faithful ``causalged``, on in
``causalged_plus``) also gives each noisy token the scRNA-seq latent entries at its own latent
index: the two-headed encoder puts both modalities in one latent space, and the in-context
tokens alone learn to use the condition poorly (docs/method-notes.md). It touches only the
noisy tokens, so the cache stays valid. ``causal=False`` turns the mask and AR groups off: a
plain conditional diffusion transformer with in-context conditioning (SpaDiT's design), with
no cache, because the condition tokens then attend to the noisy ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KV = tuple[torch.Tensor, torch.Tensor]


def timestep_features(t: torch.Tensor, dim: int, *, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of integer timesteps, any shape -> shape + (dim,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(-1) * freqs
    feats = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(feats, (0, dim - 2 * half))


class TimestepEmbedding(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_features(t, self.hidden))


class Attention(nn.Module):
    """Multi-head self-attention that can prepend cached keys/values and returns its own."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden width {hidden} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, prefix: KV | None = None) -> tuple[torch.Tensor, KV]:
        b, n, h = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        own = (k, v)
        if prefix is not None:
            k = torch.cat([prefix[0], k], dim=2)
            v = torch.cat([prefix[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, h)), own


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, hidden))

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, prefix: KV | None = None) -> tuple[torch.Tensor, KV]:
        attended, own = self.attn(self.norm1(x), mask=mask, prefix=prefix)
        x = x + attended
        return x + self.mlp(self.norm2(x)), own


class CausalityAwareTransformer(nn.Module):
    def __init__(
        self,
        *,
        latent_dim: int,
        n_tokens: int,
        n_cond: int,
        hidden: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        causal: bool = True,
        aligned_condition: bool = False,
    ):
        super().__init__()
        if latent_dim % n_tokens:
            raise ValueError(f"latent size {latent_dim} is not divisible into {n_tokens} tokens")
        self.latent_dim, self.n_tokens, self.n_cond, self.hidden = latent_dim, n_tokens, n_cond, hidden
        self.token_dim = latent_dim // n_tokens
        self.causal = causal
        self.token_in = nn.Linear(self.token_dim, hidden)
        self.pos = nn.Parameter(torch.randn(n_tokens, hidden) * 0.02)
        self.kind = nn.Parameter(torch.randn(2, hidden) * 0.02)  # 0: clean token, 1: noisy token
        self.cond_in = nn.Linear(latent_dim, n_cond * hidden)
        self.cond_pos = nn.Parameter(torch.randn(n_cond, hidden) * 0.02)
        self.cond_aligned_in = nn.Linear(self.token_dim, hidden) if aligned_condition else None
        self.time = TimestepEmbedding(hidden)
        self.blocks = nn.ModuleList(Block(hidden, heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, self.token_dim)
        nn.init.zeros_(self.out.weight)  # start by predicting zero noise (DiT's zero init)
        nn.init.zeros_(self.out.bias)

    # ------------------------------------------------------------------ token embeddings
    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) latent -> (B, L, d / L) tokens in latent-index order."""
        return z.reshape(z.shape[0], self.n_tokens, self.token_dim)

    def embed_cond(self, z_sc: torch.Tensor) -> torch.Tensor:
        return self.cond_in(z_sc).view(z_sc.shape[0], self.n_cond, self.hidden) + self.cond_pos

    def embed_clean(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.token_in(tokens) + self.pos[positions] + self.kind[0]

    def embed_noisy(self, tokens: torch.Tensor, positions: torch.Tensor, t: torch.Tensor, z_sc: torch.Tensor) -> torch.Tensor:
        x = self.token_in(tokens) + self.pos[positions] + self.kind[1] + self.time(t)
        if self.cond_aligned_in is not None:
            cond = torch.gather(self.tokens(z_sc), 1, positions.unsqueeze(-1).expand(-1, -1, self.token_dim))
            x = x + self.cond_aligned_in(cond)
        return x

    def _readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm_out(x))

    # ------------------------------------------------------------------ full sequence (training, uncached)
    def forward(
        self,
        z_sc: torch.Tensor,
        noisy: torch.Tensor,
        noisy_pos: torch.Tensor,
        t: torch.Tensor,
        *,
        clean: torch.Tensor | None = None,
        clean_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted noise for the noisy tokens of ``[condition | clean | noisy]`` under ``mask``.

        ``noisy`` (B, n, d/L) with latent indices ``noisy_pos`` (B, n) and timesteps ``t`` (B, n);
        ``mask`` is a PyTorch bool mask (True = may attend) over the whole sequence, or None.
        """
        parts = [self.embed_cond(z_sc)]
        if clean is not None and clean.shape[1] > 0:
            parts.append(self.embed_clean(clean, clean_pos))
        parts.append(self.embed_noisy(noisy, noisy_pos, t, z_sc))
        x = torch.cat(parts, dim=1)
        for block in self.blocks:
            x, _ = block(x, mask=mask)
        return self._readout(x[:, -noisy.shape[1]:])

    # ------------------------------------------------------------------ key/value cache (inference)
    def build_cache(self, z_sc: torch.Tensor) -> list[KV]:
        """Keys/values of the condition tokens in every block (they attend only to each other)."""
        if not self.causal:
            raise RuntimeError("the key/value cache needs the causal mask: with causal=False the condition attends to the noisy tokens")
        x = self.embed_cond(z_sc)
        cache = []
        for block in self.blocks:
            x, own = block(x)
            cache.append(own)
        return cache

    def extend_cache(self, cache: list[KV], clean: torch.Tensor, clean_pos: torch.Tensor) -> list[KV]:
        """Append one finished (clean) group: it sees the cache and itself, as in Algorithm 2."""
        x = self.embed_clean(clean, clean_pos)
        extended = []
        for block, prefix in zip(self.blocks, cache):
            x, own = block(x, prefix=prefix)
            extended.append((torch.cat([prefix[0], own[0]], dim=2), torch.cat([prefix[1], own[1]], dim=2)))
        return extended

    def denoise_cached(self, cache: list[KV], z_sc: torch.Tensor, noisy: torch.Tensor, noisy_pos: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise of one noisy group attending to the cache and to itself."""
        x = self.embed_noisy(noisy, noisy_pos, t, z_sc)
        for block, prefix in zip(self.blocks, cache):
            x, _ = block(x, prefix=prefix)
        return self._readout(x)
