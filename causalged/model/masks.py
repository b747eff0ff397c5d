"""Autoregressive groups (paper Algorithm 1) and the generalized causal attention mask (Algorithm 2).

The latent tokens of one gene are generated in N consecutive groups of a random token order.
Training shows the transformer the sequence ``[condition | clean groups 1..N-1 | noisy groups 1..N]``;
the mask says which token may look at which.

Polarity: the paper's matrix uses 1 = masked. PyTorch boolean attention masks use the
opposite (True = may attend). :func:`paper_mask` returns the paper's matrix (used by the unit
test against the worked example); :func:`attention_mask` returns the PyTorch mask.
"""

from __future__ import annotations

import torch


def group_count_probabilities(n_tokens: int, decay: float) -> torch.Tensor:
    """P(N = i) for i = 1..L, proportional to ``decay ** (i - 1)`` (decay = 1: uniform)."""
    if not 0 < decay <= 1:
        raise ValueError(f"AR step decay must be in (0, 1], got {decay}")
    powers = torch.arange(n_tokens, dtype=torch.float64)
    weights = torch.ones(n_tokens, dtype=torch.float64) if decay == 1 else decay**powers
    return weights / weights.sum()


def ar_group_sizes(n_tokens: int, decay: float, *, generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """Algorithm 1: draw the number of groups N with the decay law, then N - 1 distinct cut points.

    Cut points are a sorted sample without replacement from {1, ..., L - 1}, so no group is
    empty and the sizes sum to L. Returns (sizes, cumulative sums starting at 0).
    """
    probs = group_count_probabilities(n_tokens, decay)
    n_groups = int(torch.multinomial(probs, 1, generator=generator)) + 1
    cuts = (torch.randperm(n_tokens - 1, generator=generator)[: n_groups - 1] + 1).sort().values.tolist()
    cumsum = [0, *cuts, n_tokens]
    sizes = [cumsum[i + 1] - cumsum[i] for i in range(n_groups)]
    return sizes, cumsum


def paper_mask(n_tokens: int, n_cond: int, sizes: list[int]) -> torch.Tensor:
    """Algorithm 2 exactly as printed: an int matrix with 1 = masked (may NOT attend).

    Rows/columns: ``n_cond`` condition tokens, then the clean tokens of all groups but the
    last (``v = L - sizes[-1]`` of them), then the L noisy tokens.
    """
    cumsum = [0]
    for size in sizes:
        cumsum.append(cumsum[-1] + size)
    if cumsum[-1] != n_tokens:
        raise ValueError(f"group sizes {sizes} do not sum to {n_tokens}")
    visible = n_tokens - sizes[-1]
    context = n_cond + visible
    total = context + n_tokens
    mask = torch.ones(total, total, dtype=torch.int64)
    mask[:, :n_cond] = 0
    v_to_v = torch.ones(visible, visible, dtype=torch.int64)
    s_to_v = torch.ones(n_tokens, visible, dtype=torch.int64)
    s_to_s = torch.ones(n_tokens, n_tokens, dtype=torch.int64)
    for i in range(len(sizes) - 1):
        v_to_v[cumsum[i]:cumsum[i + 1], : cumsum[i + 1]] = 0  # a clean group sees clean groups up to itself
        s_to_v[cumsum[i + 1]:cumsum[i + 2], : cumsum[i + 1]] = 0  # a noisy group sees earlier clean groups
    for i in range(len(sizes)):
        s_to_s[cumsum[i]:cumsum[i + 1], cumsum[i]:cumsum[i + 1]] = 0  # ... and its own noisy tokens
    mask[n_cond:context, n_cond:context] = v_to_v
    mask[context:, n_cond:context] = s_to_v
    mask[context:, context:] = s_to_s
    return mask


def attention_mask(n_tokens: int, n_cond: int, sizes: list[int]) -> torch.Tensor:
    """The same mask in PyTorch polarity: a bool matrix with True = may attend."""
    return paper_mask(n_tokens, n_cond, sizes) == 0
