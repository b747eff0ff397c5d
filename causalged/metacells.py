"""Pooling a large reference into metacells, so that fits stop growing with the number of cells.

Cells are grouped by k-means on a truncated SVD of the (sparse) matrix, and a group's profile
is the mean of its cells' log-normalized values: a sparse averaging matrix times the sparse
reference, never a dense cells x genes copy. Up to :data:`ONE_LEVEL_MAX` groups one k-means
does it; above, cells are first split into coarse clusters (about :data:`METACELLS_PER_COARSE`
metacells each) and each is split again into metacells in proportion to its size, so the cost
stays about linear in cells. Used by the diffusion model (a few hundred metacells, its
condition width) and by every classical method above
:data:`causalged.methods.base.MAX_FIT_CELLS` cells.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Metacell counts up to which a single k-means groups the cells.
ONE_LEVEL_MAX = 1024
#: Metacells per coarse cluster of the two-level grouping (at least 256 coarse clusters, at most 2,048).
METACELLS_PER_COARSE = 64
#: Dimensions of the truncated SVD the grouping clusters in.
SVD_COMPONENTS = 30


def metacell_groups(matrix, n_metacells: int, *, seed: int = 0) -> np.ndarray | None:
    """Label each cell (row) with one of ``n_metacells`` groups; None if no pooling is needed.

    Works on CSR input without densifying it. Labels are in [0, n_metacells); a group left
    empty simply yields an all-zero metacell.
    """
    n_cells = matrix.shape[0]
    if n_cells <= n_metacells:
        return None
    from sklearn.decomposition import TruncatedSVD

    if matrix.shape[1] <= 2:  # too few genes for an SVD: cluster on the (narrow) matrix itself
        embedding = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    else:
        embedding = TruncatedSVD(min(SVD_COMPONENTS, matrix.shape[1] - 1), random_state=seed).fit_transform(matrix)
    embedding = np.ascontiguousarray(embedding, dtype=np.float32)
    if n_metacells <= ONE_LEVEL_MAX:
        return _kmeans(embedding, n_metacells, seed=seed)
    n_coarse = int(np.clip(n_metacells // METACELLS_PER_COARSE, 256, 2048))
    coarse = _kmeans(embedding, n_coarse, seed=seed)
    quota = _split_quota(np.bincount(coarse, minlength=n_coarse), n_metacells)
    labels = np.zeros(n_cells, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(quota)])
    for group in np.flatnonzero(quota):
        members = np.flatnonzero(coarse == group)
        inner = _kmeans(embedding[members], int(quota[group]), seed=seed, full_batch=True) if quota[group] > 1 else 0
        labels[members] = first[group] + inner
    return labels


def _kmeans(embedding: np.ndarray, n_groups: int, *, seed: int, full_batch: bool = False) -> np.ndarray:
    """k-means labels; mini-batch for the big first split, a few full Lloyd rounds for the small inner ones."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n_groups >= len(embedding):
        return np.arange(len(embedding), dtype=np.int64)
    if full_batch:
        model = KMeans(n_clusters=n_groups, random_state=seed, n_init=1, max_iter=10, init="random")
    else:
        model = MiniBatchKMeans(n_clusters=n_groups, random_state=seed, batch_size=4096, n_init=1)
    return model.fit_predict(embedding).astype(np.int64)


def _split_quota(sizes: np.ndarray, total: int) -> np.ndarray:
    """Metacells per coarse cluster: proportional to its cells (largest remainders), at least one
    for a non-empty cluster, never more than its cells, summing to ``total``."""
    share = sizes / sizes.sum() * total
    quota = np.minimum(np.maximum(np.floor(share).astype(np.int64), (sizes > 0).astype(np.int64)), sizes)
    order = np.argsort(-(share - np.floor(share)))
    while quota.sum() != total:
        step = 1 if quota.sum() < total else -1
        changed = False
        for group in order if step > 0 else order[::-1]:
            if quota.sum() == total:
                break
            if (step > 0 and quota[group] < sizes[group]) or (step < 0 and quota[group] > 1):
                quota[group] += step
                changed = True
        if not changed:
            break
    return quota


def pooling_matrix(groups: np.ndarray, n_groups: int) -> sp.csr_matrix:
    """Sparse (n_groups, cells) matrix whose product with a cells x genes matrix is the group means
    (float32, like the reference: a float64 pool would double the pooled product's memory)."""
    sizes = np.bincount(groups, minlength=n_groups).astype(np.float64)
    weights = (1.0 / sizes[groups]).astype(np.float32)
    return sp.csr_matrix((weights, (groups, np.arange(len(groups)))), shape=(n_groups, len(groups)))
