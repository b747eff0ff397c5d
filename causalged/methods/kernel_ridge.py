"""Kernel ridge regression over genes: CausalGeD's gene-as-sample view in closed form.

Genes are the samples: a gene's features are its z-scored scRNA-seq vector over cells, its
target its z-scored ST vector over spots. A held-out gene's ST vector is then a weighted sum
of the training genes' ST vectors, weighted by how alike the genes look in scRNA-seq. With a
linear kernel (gene-gene correlation) this is the linear limit of any learned gene-as-sample
model, the reference such a model must beat; the RBF kernel ``exp(-gamma |a - b|^2)`` on
correlation distance weights close genes more sharply. The ridge strength (and gamma) are
chosen by exact leave-one-gene-out on the training genes, never on held-out genes.
"""

from __future__ import annotations

import numpy as np

from causalged.arrays import zscore
from causalged.methods.base import Imputer

RIDGE_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
GAMMA_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)


def gene_kernel(a: np.ndarray, b: np.ndarray, *, kernel: str, gamma: float) -> np.ndarray:
    """Kernel between genes (rows) given their z-scored, length-normalized vectors."""
    return kernel_from_correlation(a @ b.T, kernel=kernel, gamma=gamma)


def kernel_from_correlation(corr: np.ndarray, *, kernel: str, gamma: float) -> np.ndarray:
    """The kernel as a function of gene-gene correlation (one product over cells serves every gamma)."""
    if kernel == "linear":
        return corr
    if kernel == "rbf":
        return np.exp(-gamma * np.clip(2.0 - 2.0 * corr, 0.0, None))
    raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")


def loo_predictions(k: np.ndarray, y: np.ndarray, ridges) -> list[np.ndarray]:
    """Exact leave-one-out predictions of kernel ridge (rows of y = samples), one per ridge.

    One eigendecomposition serves every ridge: hat = V diag(e / (e + ridge)) V^T.
    """
    evals, vecs = np.linalg.eigh(k)
    evals = np.clip(evals, 0.0, None)
    vty = vecs.T @ y
    out = []
    for ridge in ridges:
        shrink = evals / (evals + ridge)
        fitted = vecs @ (shrink[:, None] * vty)
        leverage = (vecs**2) @ shrink
        out.append(y - (y - fitted) / np.clip(1.0 - leverage, 1e-9, None)[:, None])
    return out


def mean_row_pcc(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Pearson correlation of matching rows (genes), NaN-safe."""
    za, zb = zscore(a, axis=1), zscore(b, axis=1)
    return float(np.nanmean(np.mean(za * zb, axis=1)))


def gene_features(sc: np.ndarray) -> np.ndarray:
    """Genes x cells: z-scored over cells and scaled so a gene's self-correlation is 1."""
    return zscore(sc).T / np.sqrt(sc.shape[0])


class KernelRidgeImputer(Imputer):
    """Gene-as-sample kernel ridge; ``kernel="linear"`` is the registered ``kernel_ridge``."""

    name = "kernel_ridge"

    def __init__(self, *, kernel: str = "linear", ridge: float | None = None, gamma: float | None = None):
        super().__init__(kernel=kernel, ridge=ridge, gamma=gamma)
        if kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        self.fit_features(gene_features(sc_train), zscore(st_train).T)

    def fit_features(self, x_train: np.ndarray, y: np.ndarray, *, corr: np.ndarray | None = None) -> "KernelRidgeImputer":
        """Fit from gene features (genes x cells, :func:`gene_features`) and z-scored ST maps
        (genes x spots); ``corr`` (``x_train @ x_train.T``), when known, saves the product over cells."""
        self.x_train_ = x_train
        self.corr_ = corr = x_train @ x_train.T if corr is None else corr
        kernel = self.params["kernel"]
        ridges = RIDGE_GRID if self.params["ridge"] is None else (self.params["ridge"],)
        gammas = (1.0,) if kernel == "linear" else (GAMMA_GRID if self.params["gamma"] is None else (self.params["gamma"],))
        best = None
        for gamma in gammas:
            k = kernel_from_correlation(corr, kernel=kernel, gamma=gamma)
            loo = loo_predictions(k, y, ridges) if len(ridges) * len(gammas) > 1 else [y] * len(ridges)
            for ridge, pred in zip(ridges, loo):
                score = mean_row_pcc(pred, y)
                if best is None or score > best[0]:
                    best = (score, ridge, gamma, k)
        _, self.ridge_, self.gamma_, k = best
        self.coef_ = np.linalg.solve(k + self.ridge_ * np.eye(len(k)), y)
        self.info_ = {"kernel": kernel, "ridge": self.ridge_, "gamma": self.gamma_ if kernel == "rbf" else None, "selected_by": "leave-one-gene-out on training genes"}
        return self

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return self.pattern_from_correlation(gene_features(sc_target) @ self.x_train_.T)

    def pattern_from_correlation(self, corr: np.ndarray) -> np.ndarray:
        """Spots x targets from the targets' correlations with the training genes (targets x genes)."""
        return (kernel_from_correlation(corr, kernel=self.params["kernel"], gamma=self.gamma_) @ self.coef_).T

    def _bootstrap_clone(self) -> "KernelRidgeImputer":
        return type(self)(kernel=self.params["kernel"], ridge=self.ridge_, gamma=self.gamma_)


class RBFKernelRidgeImputer(KernelRidgeImputer):
    """The same regression with an RBF kernel on correlation distance (registered ``kernel_ridge_rbf``)."""

    name = "kernel_ridge_rbf"

    def __init__(self, *, ridge: float | None = None, gamma: float | None = None, kernel: str = "rbf"):
        super().__init__(kernel=kernel, ridge=ridge, gamma=gamma)
