"""Array helpers every part of the package shares (methods, evaluation, figures, causality).

Conventions: ``sc_*`` are cells x genes, ``st_*`` spots x genes, both log-normalized.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def as_dense(matrix) -> np.ndarray:
    """Dense float64 copy of a dense or sparse matrix."""
    if sp.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def column_compressed(matrix):
    """Targets are sliced by columns, a block of genes at a time: CSC makes that cheap (dense stays dense)."""
    return sp.csc_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix)


#: Rows of a matrix a blocked column pass takes at a time (about 2^24 entries): moments and
#: products over 10^5 spots never make a second copy of the matrix.
BLOCK_ENTRIES = 2**24


def row_blocks(n_rows: int, n_cols: int) -> list[slice]:
    """Slices of rows holding about :data:`BLOCK_ENTRIES` entries each (one slice when small)."""
    step = max(1, BLOCK_ENTRIES // max(n_cols, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, max(n_rows, 1), step)]


#: Memory one block of predicted genes may take (mean, std and the samples, float32): impute and
#: cross-validation predict a block of genes at a time, so samples of 10^5 spots stay bounded.
GENE_BLOCK_BYTES = 256 * 2**20


def genes_per_block(n_spots: int, n_samples: int, chunk_genes: int | None = None) -> int:
    """Genes predicted at a time: ``chunk_genes``, or as many as fit :data:`GENE_BLOCK_BYTES`
    (every target at once on demo-size data, so small runs are unchanged)."""
    if chunk_genes:
        return int(chunk_genes)
    return max(1, GENE_BLOCK_BYTES // (4 * max(n_spots, 1) * (n_samples + 2)))


def column_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column mean and (population) SD, in blocks of rows, so a large matrix is never copied."""
    blocks = row_blocks(x.shape[0], x.shape[1])
    if len(blocks) == 1:
        return np.asarray(x.mean(axis=0), dtype=np.float64), np.asarray(x.std(axis=0), dtype=np.float64)
    mean = sum(np.asarray(x[b].sum(axis=0), dtype=np.float64) for b in blocks) / x.shape[0]
    squares = sum(np.sum((x[b] - mean) ** 2, axis=0) for b in blocks)
    return mean, np.sqrt(squares / x.shape[0])


def zscore(x: np.ndarray, *, axis: int = 0, moments: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """z-score along ``axis``; a constant vector becomes all zeros instead of NaN. One new array.
    ``moments`` (column mean and SD, axis 0) z-scores a block of rows as part of a larger matrix."""
    if moments is not None:
        mean, sd = moments
    elif axis == 0:
        mean, sd = column_moments(x)
    else:
        mean, sd = x.mean(axis=axis, keepdims=True), x.std(axis=axis, keepdims=True)
    out = np.subtract(x, mean)
    out /= np.where(sd > 0, sd, 1.0)
    return out


def standardized_product(x: np.ndarray, weights: np.ndarray, moments: tuple[np.ndarray, np.ndarray], *,
                         columns: np.ndarray | None = None) -> np.ndarray:
    """``zscore(x) @ weights.T`` (rows x outputs) from x's column ``moments`` without a z-scored
    copy of x: ``x @ (w / sd).T - (mean / sd) @ w.T``, in blocks of rows. Constant columns count 0.
    ``columns``: the columns of x that ``weights`` (outputs x len(columns)) covers, the others
    weighing 0; the product then costs len(columns) / x's columns of the whole one."""
    mean, sd = (np.asarray(m) for m in moments) if columns is None else (np.asarray(m)[columns] for m in moments)
    scaled = weights / np.where(sd > 0, sd, np.inf)  # outputs x columns
    offset = scaled @ mean
    out = np.empty((x.shape[0], weights.shape[0]), dtype=np.result_type(x.dtype, scaled.dtype))
    for b in row_blocks(x.shape[0], x.shape[1]):
        out[b] = (x[b] if columns is None else x[b][:, columns]) @ scaled.T - offset
    return out


def renormalize_log(st_log: np.ndarray) -> np.ndarray:
    """Re-normalize log1p-normalized values over a subset of genes, as if from raw counts.

    ``expm1`` of normalized data is each spot's counts times a per-spot factor; dividing by the
    row sum over the subset removes that factor, so the library size again counts only these
    genes (method.md section 4). Used for inner folds, where raw counts are not passed in.
    """
    counts = np.expm1(np.clip(st_log, 0, None))
    totals = counts.sum(axis=1, keepdims=True)
    positive = totals[totals > 0]
    target = float(np.median(positive)) if positive.size else 1.0
    return np.log1p(counts / np.where(totals > 0, totals, 1.0) * target)


def similar_gene_average(similarity: np.ndarray, values: np.ndarray, *, k: int = 5) -> np.ndarray:
    """Per row gene: the similarity-weighted mean of ``values`` over its k most similar
    reference genes (columns of ``similarity``); dissimilar genes get a negligible weight.
    Used to estimate how well a gene will be predicted from how well its look-alikes were."""
    top = np.argsort(-similarity, axis=1)[:, : min(k, similarity.shape[1])]
    weights = np.clip(np.take_along_axis(similarity, top, axis=1), 1e-6, None)
    return np.sum(weights * np.asarray(values)[top], axis=1) / weights.sum(axis=1)
