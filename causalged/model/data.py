"""Turning cells x genes / spots x genes matrices into gene-major tensors, with bounded memory.

Genes are the samples, so every matrix is transposed to genes x observations. Sparse input is
never densified as a whole: large references are pooled into at most ``max_cells``
metacells first (a sparse averaging matrix times the sparse counts), so the dense gene-major
condition matrix is at most ``max_cells`` wide whatever the number of cells.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from causalged.metacells import pooling_matrix


def check_shapes(sc_matrix, st_matrix, *, n_cells: int, n_spots: int) -> None:
    """Refuse matrices that do not fit the model (wrong cells/spots, different gene counts)."""
    if sc_matrix.shape[0] != n_cells:
        raise ValueError(f"the scRNA-seq matrix has {sc_matrix.shape[0]} cells (rows) but the model was built for n_cells={n_cells}")
    if st_matrix is not None:
        if st_matrix.shape[0] != n_spots:
            raise ValueError(f"the ST matrix has {st_matrix.shape[0]} spots (rows) but the model was built for n_spots={n_spots}")
        if st_matrix.shape[1] != sc_matrix.shape[1]:
            raise ValueError(f"the scRNA-seq ({sc_matrix.shape[1]}) and ST ({st_matrix.shape[1]}) matrices must hold the same genes (columns)")


def genes_by_cells(sc_matrix, groups: np.ndarray | None, n_columns: int) -> np.ndarray:
    """(genes, n_columns) float32: each gene's vector over cells, or over metacells (group means)."""
    if groups is None:
        dense = sc_matrix.toarray() if sp.issparse(sc_matrix) else np.asarray(sc_matrix)
        return np.ascontiguousarray(dense.T, dtype=np.float32)
    pooled = pooling_matrix(groups, n_columns) @ (sc_matrix if sp.issparse(sc_matrix) else np.asarray(sc_matrix))
    pooled = pooled.toarray() if sp.issparse(pooled) else np.asarray(pooled)
    return np.ascontiguousarray(pooled.T, dtype=np.float32)


def genes_by_spots(st_matrix) -> np.ndarray:
    """(genes, spots) float32: each gene's vector over the spots."""
    dense = st_matrix.toarray() if sp.issparse(st_matrix) else np.asarray(st_matrix)
    return np.ascontiguousarray(dense.T, dtype=np.float32)


def standardize_genes(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score each gene's vector (rows): returns (z, mean, std); constant genes get std 1.

    The model learns spatial *patterns*; a gene's level (mean, spread) would otherwise dominate
    the loss of a gene-as-sample model, since it varies far more between genes than within one.
    """
    mean = matrix.mean(axis=1)
    std = matrix.std(axis=1)
    std = np.where(std > 1e-6, std, 1.0)
    return ((matrix - mean[:, None]) / std[:, None]).astype(np.float32), mean.astype(np.float32), std.astype(np.float32)
