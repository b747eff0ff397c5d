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


def zscore(x: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """z-score along ``axis``; a constant vector becomes all zeros instead of NaN."""
    mean = x.mean(axis=axis, keepdims=True)
    sd = x.std(axis=axis, keepdims=True)
    return (x - mean) / np.where(sd > 0, sd, 1.0)


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
