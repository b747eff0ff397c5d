"""SpaGE-style k nearest cells: a spot's held-out gene = a weighted mean over similar cells.

Cells and spots are placed in one low-dimensional space: each modality's training genes are
z-scored separately (which removes platform offsets gene by gene), stacked, and reduced by one
joint PCA. For every spot the k nearest cells by cosine distance give the prediction, weighted
by cosine similarity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA

from causalged.arrays import column_moments, row_blocks, zscore
from causalged.methods.base import Imputer


def knn_weights(sc_train: np.ndarray, st_train: np.ndarray, *, k: int = 50, n_pcs: int = 50, seed: int = 0) -> sp.csr_matrix:
    """Spots x cells weight matrix (rows sum to 1) from the joint PCA of the training genes."""
    return knn_weight_grid(sc_train, st_train, ks=(k,), n_pcs_grid=(n_pcs,), seed=seed)[(n_pcs, k)]


#: Rows (cells and spots together) the joint PCA is fitted on; above it a seeded sample of each
#: modality in proportion to its rows, so the fit holds at most this many rows (0.8 GB at 5,000
#: genes) while every cell and spot is projected, a block at a time.
MAX_PCA_ROWS = 20_000


def knn_weight_grid(sc_train: np.ndarray, st_train: np.ndarray, *, ks, n_pcs_grid, seed: int = 0, genes: np.ndarray | None = None,
                    sc_moments: tuple | None = None) -> dict[tuple[int, int], sp.csr_matrix]:
    """``{(n_pcs, k): weights}`` for every pair, from one joint PCA and one neighbour search per
    ``n_pcs``: the leading components of the largest PCA are the smaller PCAs, and the k nearest
    cells are the first k of the largest k, so the whole grid costs little more than its largest entry.

    ``genes``: the columns of ``sc_train`` that match ``st_train``'s (all when None), read a block
    of rows at a time, so the default's inner folds never copy the reference's training genes
    (1.4 GB at 50,000 metacells); ``sc_moments``: their mean and SD, when known."""
    sc_moments = column_moments(_rows(sc_train, slice(None), genes)) if sc_moments is None else sc_moments
    st_moments = column_moments(st_train)
    n_genes = st_train.shape[1]
    n_max = max(1, min(max(n_pcs_grid), n_genes - 1))
    n_rows = sc_train.shape[0] + st_train.shape[0]
    rng = np.random.default_rng(seed)
    sample = [np.sort(rng.permutation(len(x))[: max(1, round(len(x) * MAX_PCA_ROWS / n_rows))]) if n_rows > MAX_PCA_ROWS else slice(None)
              for x in (sc_train, st_train)]
    pca = PCA(n_components=n_max, random_state=seed).fit(np.vstack([zscore(_rows(sc_train, sample[0], genes), moments=sc_moments),
                                                                     zscore(st_train[sample[1]], moments=st_moments)]))
    cells, spots = (np.vstack([pca.transform(zscore(_rows(x, b, g), moments=m)) for b in row_blocks(x.shape[0], n_genes)])
                    for x, m, g in ((sc_train, sc_moments, genes), (st_train, st_moments, None)))
    k_max = min(max(ks), cells.shape[0])
    rows = np.arange(spots.shape[0])
    out = {}
    for n_pcs in n_pcs_grid:
        n_comp = max(1, min(n_pcs, n_max))
        sim, idx = top_cosine(spots[:, :n_comp], cells[:, :n_comp], k=k_max)  # most similar first
        for k in ks:
            kk = min(k, k_max)
            weights = neighbour_weights(sim[:, :kk])
            out[(n_pcs, k)] = sp.csr_matrix((weights.ravel(), (np.repeat(rows, kk), idx[:, :kk].ravel())), shape=(spots.shape[0], cells.shape[0]))
    return out


def _rows(matrix: np.ndarray, rows, genes: np.ndarray | None) -> np.ndarray:
    """``matrix[rows][:, genes]``, copying only those entries."""
    if genes is None:
        return matrix[rows]
    return matrix[rows][:, genes] if isinstance(rows, slice) else matrix[np.ix_(rows, genes)]


def neighbour_weights(sim: np.ndarray) -> np.ndarray:
    """Rows of neighbour similarities -> weights that sum to 1: negative similarities count 0,
    and a spot with no positively similar neighbour takes the plain mean of its neighbours."""
    weights = np.clip(sim, 0.0, None)
    weights[weights.sum(axis=1) == 0] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


def top_cosine(queries: np.ndarray, refs: np.ndarray, *, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar reference rows for each query row, most similar first:
    (similarities, indices). Blocks of queries keep memory at chunk x refs; torch's top-k
    is several times faster than a NumPy partition over each block's rows."""
    import torch

    def unit(x):
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return torch.from_numpy((x / np.where(norm > 0, norm, 1.0)).astype(np.float32))

    q, r = unit(queries), unit(refs)
    k = min(k, r.shape[0])
    sims = np.empty((len(q), k), dtype=np.float64)
    idx = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), chunk):
        top = torch.topk(q[start:start + chunk] @ r.T, k, dim=1)
        sims[start:start + chunk], idx[start:start + chunk] = top.values.numpy(), top.indices.numpy()
    return sims, idx


class KNNImputer(Imputer):
    """Joint PCA of the training genes, cosine distance, k nearest cells per spot."""

    name = "knn"

    def __init__(self, *, k: int = 50, n_pcs: int = 50, seed: int = 0):
        super().__init__(k=k, n_pcs=n_pcs, seed=seed)

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        self.weights_ = knn_weights(sc_train, st_train, **self.params)
        self.info_ = dict(self.params)

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return np.asarray(self.weights_ @ sc_target)
