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

from collections.abc import Iterator

import numpy as np

from causalged.arrays import column_moments, row_blocks, standardized_product, zscore
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


def loo_predictions(k: np.ndarray, y: np.ndarray, ridges) -> Iterator[np.ndarray]:
    """Exact leave-one-out predictions of kernel ridge (rows of y = samples), one per ridge, in turn.

    One eigendecomposition serves every ridge: hat = V diag(e / (e + ridge)) V^T.
    """
    for residual, leverage in _loo_residuals(k, y, ridges):
        residual /= np.clip(1.0 - leverage, 1e-9, None)[:, None]
        yield y - residual


def loo_scores(k: np.ndarray, y: np.ndarray, ridges) -> Iterator[float]:
    """:func:`mean_row_pcc` of each ridge's leave-one-out predictions with ``y`` (rows centred:
    z-scored genes), from each row's residual moments instead of a copy of the predictions.
    A constant row scores 0, as there."""
    n = y.shape[1]
    own = np.einsum("gs,gs->g", y, y) / n  # 1 for a z-scored gene, 0 for a constant one
    for residual, leverage in _loo_residuals(k, y, ridges):
        c = np.clip(1.0 - leverage, 1e-9, None)
        with_truth = np.einsum("gs,gs->g", residual, y) / n / c  # the hat is linear: residuals stay centred
        spread = np.einsum("gs,gs->g", residual, residual) / n / c**2
        sd = np.sqrt(np.clip(own - 2.0 * with_truth + spread, 0.0, None) * own)
        yield float(np.mean(np.where(sd > 1e-12, (own - with_truth) / np.where(sd > 1e-12, sd, 1.0), 0.0)))


def _loo_residuals(k: np.ndarray, y: np.ndarray, ridges) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per ridge: the in-sample residuals ``y - hat @ y`` and the hat's diagonal."""
    evals, vecs = np.linalg.eigh(k)
    evals = np.clip(evals, 0.0, None)
    vty = vecs.T @ y
    for ridge in ridges:
        shrink = evals / (evals + ridge)
        yield vecs @ ((1.0 - shrink)[:, None] * vty), (vecs**2) @ shrink


def mean_row_pcc(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Pearson correlation of matching rows (genes), NaN-safe."""
    za, zb = zscore(a, axis=1), zscore(b, axis=1)
    return float(np.nanmean(np.mean(za * zb, axis=1)))


def gene_features(sc: np.ndarray) -> np.ndarray:
    """Genes x cells: z-scored over cells and scaled so a gene's self-correlation is 1."""
    features = zscore(sc)
    features /= np.sqrt(sc.shape[0])
    return features.T


def gene_correlation(sc_a: np.ndarray, sc_b: np.ndarray, *, moments_b: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Genes of ``sc_a`` x genes of ``sc_b``: Pearson correlation over cells, ``gene_features(a) @
    gene_features(b).T``, without a z-scored copy of ``sc_b`` (a reference of 5 x 10^4 metacells
    x 5,000 genes is 2 GB a copy): only ``sc_a`` is centred, in blocks of cells."""
    mean_a, sd_a = column_moments(sc_a)
    mean_b, sd_b = column_moments(sc_b) if moments_b is None else moments_b
    cov = sum((sc_a[b] - mean_a).T @ sc_b[b] for b in row_blocks(sc_a.shape[0], sc_a.shape[1] + sc_b.shape[1]))
    return cov / sc_a.shape[0] / np.outer(np.where(sd_a > 0, sd_a, np.inf), np.where(sd_b > 0, sd_b, np.inf))


class KernelRidgeImputer(Imputer):
    """Gene-as-sample kernel ridge; ``kernel="linear"`` is the registered ``kernel_ridge``.

    The fit keeps the training matrices (not copies) with their per-gene moments and the dual
    weights ``(K + ridge I)^-1`` (genes x genes); a target's ST pattern is
    ``zscore(st_train) @ (k(target, genes) @ dual).T``, computed without a z-scored copy of the
    ST panel, so a fit over 10^5 spots holds no spots x genes matrix of its own.
    """

    name = "kernel_ridge"
    #: Spots on which the ridge strength and RBF width are chosen (a seeded subset above it): the
    #: leave-one-gene-out score is a mean over spots, and its cost grows with them.
    MAX_SELECTION_SPOTS = 4000
    #: Training genes the regression takes as its samples (a seeded subset above it): its cost is
    #: cubic in them (an eigendecomposition per RBF width), 15 s at 4,800 genes on 2 cores and
    #: paid in every inner fold of the default, while panels up to 384 genes (every measured
    #: dataset) are far below. What the subset costs in accuracy on a 5,000-gene panel is unmeasured.
    MAX_SAMPLE_GENES = 2000

    def __init__(self, *, kernel: str = "linear", ridge: float | None = None, gamma: float | None = None):
        super().__init__(kernel=kernel, ridge=ridge, gamma=gamma)
        if kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        self.fit_arrays(sc_train, st_train, moments=self.train_moments_)

    def fit_arrays(self, sc_train: np.ndarray | None, st_train: np.ndarray, *, corr: np.ndarray | None = None,
                   moments: tuple | None = None) -> "KernelRidgeImputer":
        """Fit on cells x genes and spots x genes log values; ``corr`` (the genes' correlation
        over cells) and ``moments`` (sc mean, sc SD, ST mean, ST SD per gene), when known, save passes.
        Given both, ``sc_train`` may be None: that fit predicts from correlations only
        (:meth:`pattern_from_correlation`), as the default's inner folds do."""
        sc_mean, sc_sd, st_mean, st_sd = moments if moments is not None else (*column_moments(sc_train), *column_moments(st_train))
        self.sc_train_, self.sc_moments_ = sc_train, (sc_mean, sc_sd)
        self.st_train_, self.st_moments_ = st_train, (st_mean, st_sd)
        self.corr_ = gene_correlation(sc_train, sc_train, moments_b=self.sc_moments_) if corr is None else corr
        n_genes = st_train.shape[1]
        # the sample genes: every training gene once, a seeded subset above MAX_SAMPLE_GENES, a resampled fit's draw
        self.genes_ = None if n_genes <= self.MAX_SAMPLE_GENES else np.sort(np.random.default_rng(0).permutation(n_genes)[: self.MAX_SAMPLE_GENES])
        samples = slice(None) if self.genes_ is None else self.genes_
        kernel = self.params["kernel"]
        ridges = RIDGE_GRID if self.params["ridge"] is None else (self.params["ridge"],)
        gammas = (1.0,) if kernel == "linear" else (GAMMA_GRID if self.params["gamma"] is None else (self.params["gamma"],))
        if len(ridges) * len(gammas) == 1:
            self.ridge_, self.gamma_ = ridges[0], gammas[0]
        else:
            spots = np.arange(st_train.shape[0])
            if len(spots) > self.MAX_SELECTION_SPOTS:
                spots = np.sort(np.random.default_rng(0).permutation(len(spots))[: self.MAX_SELECTION_SPOTS])
            y = zscore(st_train[spots][:, samples]).T  # sample genes x selection spots
            sample_corr = self.corr_[samples][:, samples]
            best = None
            for gamma in gammas:
                k = kernel_from_correlation(sample_corr, kernel=kernel, gamma=gamma)
                for ridge, score in zip(ridges, loo_scores(k, y, ridges)):
                    if best is None or score > best[0]:
                        best = (score, ridge, gamma)
            _, self.ridge_, self.gamma_ = best
        self.dual_ = self._dual(self.corr_[samples][:, samples])
        self.info_ = {"kernel": kernel, "ridge": self.ridge_, "gamma": self.gamma_ if kernel == "rbf" else None, "selected_by": "leave-one-gene-out on training genes"}
        return self

    def _dual(self, corr: np.ndarray) -> np.ndarray:
        k = kernel_from_correlation(corr, kernel=self.params["kernel"], gamma=self.gamma_)
        return np.linalg.solve(k + self.ridge_ * np.eye(len(k)), np.eye(len(k)))

    def resampled(self, pick: np.ndarray) -> "KernelRidgeImputer":
        """The fit on training genes ``pick`` (drawn with replacement; those among its sample genes)
        at the chosen ridge and width, sharing this fit's matrices: a refit costs one genes x genes solve."""
        clone = type(self)(kernel=self.params["kernel"], ridge=self.ridge_, gamma=self.gamma_)
        clone.sc_train_, clone.sc_moments_, clone.st_train_, clone.st_moments_ = self.sc_train_, self.sc_moments_, self.st_train_, self.st_moments_
        pick = np.asarray(pick)
        clone.corr_, clone.ridge_, clone.gamma_ = self.corr_, self.ridge_, self.gamma_
        clone.genes_ = pick if self.genes_ is None else pick[np.isin(pick, self.genes_)]
        clone.dual_ = clone._dual(self.corr_[np.ix_(clone.genes_, clone.genes_)])
        return clone

    def correlation(self, sc_target: np.ndarray) -> np.ndarray:
        """Targets x training genes: the targets' correlation over cells with every training gene."""
        return gene_correlation(sc_target, self.sc_train_, moments_b=self.sc_moments_)

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return self.pattern_from_correlation(self.correlation(sc_target))

    def pattern_from_correlation(self, corr: np.ndarray) -> np.ndarray:
        """Spots x targets from the targets' correlations with every training gene (targets x genes)."""
        return patterns_from_correlation([self], corr)[0]

    def gene_weights(self, corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ST columns, targets x those columns): the weights of the targets' patterns on the sample
        genes; a gene drawn twice by a resampled fit gets both its weights."""
        if self.genes_ is None:
            return np.arange(self.st_train_.shape[1]), kernel_from_correlation(corr, kernel=self.params["kernel"], gamma=self.gamma_) @ self.dual_
        drawn = kernel_from_correlation(corr[:, self.genes_], kernel=self.params["kernel"], gamma=self.gamma_) @ self.dual_
        columns = np.unique(self.genes_)
        weights = np.zeros((len(drawn), len(columns)))
        np.add.at(weights.T, np.searchsorted(columns, self.genes_), drawn.T)
        return columns, weights

    def _bootstrap_clone(self) -> "KernelRidgeImputer":
        return type(self)(kernel=self.params["kernel"], ridge=self.ridge_, gamma=self.gamma_)


def patterns_from_correlation(models: list[KernelRidgeImputer], corr: np.ndarray) -> list[np.ndarray]:
    """Each model's :meth:`~KernelRidgeImputer.pattern_from_correlation` for the same targets, in
    one pass over the ST matrix they share (a fit and its resampled refits): the weights are
    stacked over the union of their sample genes, so the bootstrap costs one product, not one each."""
    weights = [model.gene_weights(corr) for model in models]
    columns = np.unique(np.concatenate([c for c, _ in weights]))
    stacked = np.zeros((sum(len(w) for _, w in weights), len(columns)))
    row = 0
    for c, w in weights:
        stacked[row:row + len(w), np.searchsorted(columns, c)] = w
        row += len(w)
    full = len(columns) == models[0].st_train_.shape[1]
    out = standardized_product(models[0].st_train_, stacked, models[0].st_moments_, columns=None if full else columns)
    return np.split(out, np.cumsum([len(w) for _, w in weights])[:-1], axis=1)


class RBFKernelRidgeImputer(KernelRidgeImputer):
    """The same regression with an RBF kernel on correlation distance (registered ``kernel_ridge_rbf``)."""

    name = "kernel_ridge_rbf"

    def __init__(self, *, ridge: float | None = None, gamma: float | None = None, kernel: str = "rbf"):
        super().__init__(kernel=kernel, ridge=ridge, gamma=gamma)
