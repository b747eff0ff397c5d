"""The default: a per-gene z-scored blend of k nearest cells and kernel ridge over genes.

The two views make different errors: kNN asks "which cells look like this spot", kernel ridge
over genes asks "which training genes look like this gene in scRNA-seq" (CausalGeD's
gene-as-sample view, in closed form). The blend is ``alpha * z(kNN) + (1 - alpha) * z(ridge)``
with one weight ``alpha`` chosen on out-of-fold predictions of the TRAINING genes only: inner
folds over the training genes hold some out, recompute both predictions without them (the ST
input re-normalized without them too, so training looks like test) and pick the alpha with
the best mean PCC. Held-out genes are never used. Evidence: method.md section 10. The
gene-as-sample view uses the RBF kernel on gene-gene correlation distance by default (it beat
the linear kernel on the osmFISH and MERFISH pairs; docs/benchmarks.md says so), with ridge
strength and width chosen by leave-one-gene-out on the training genes.
"""

from __future__ import annotations

import numpy as np

from causalged.methods.base import Imputer, as_dense, renormalize_log, similar_gene_average, zscore
from causalged.methods.kernel_ridge import KernelRidgeImputer, gene_features, mean_row_pcc
from causalged.methods.knn import knn_weights

ALPHA_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))


class KnnRidgeBlendImputer(Imputer):
    name = "knn_ridge_blend"
    max_refits = 10

    def __init__(self, *, k: int = 50, n_pcs: int = 50, ridge_kernel: str = "rbf", inner_folds: int = 5,
                 alpha: float | None = None, ridge: float | None = None, gamma: float | None = None, seed: int = 0):
        super().__init__(k=k, n_pcs=n_pcs, ridge_kernel=ridge_kernel, inner_folds=inner_folds, alpha=alpha, ridge=ridge, gamma=gamma, seed=seed)

    def _ridge(self) -> KernelRidgeImputer:
        return KernelRidgeImputer(kernel=self.params["ridge_kernel"], ridge=self.params["ridge"], gamma=self.params["gamma"])

    def _views(self, sc_train, st_train, sc_target) -> tuple[np.ndarray, np.ndarray]:
        """z-scored kNN and kernel-ridge patterns of the targets (spots x targets)."""
        weights = knn_weights(sc_train, st_train, k=self.params["k"], n_pcs=self.params["n_pcs"], seed=self.params["seed"])
        ridge = self._ridge().fit(sc_train, st_train)
        return zscore(np.asarray(weights @ sc_target)), zscore(ridge._pattern(sc_target))

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        self.oof_pcc_ = self.oof_pattern_ = None
        alpha, info = self.params["alpha"], {}
        if alpha is None:
            alpha, info = self._choose_alpha(sc_train, st_train)
        self.alpha_ = float(alpha)
        self.weights_ = knn_weights(sc_train, st_train, k=self.params["k"], n_pcs=self.params["n_pcs"], seed=self.params["seed"])
        self.ridge_model_ = self._ridge().fit(sc_train, st_train)
        self.info_ = {
            "alpha": self.alpha_,
            "alpha_selected_by": "inner CV on training genes" if self.params["alpha"] is None else "fixed",
            **info,
            "k": self.params["k"],
            "ridge_kernel": self.params["ridge_kernel"],
            "ridge": self.ridge_model_.ridge_,
            "gamma": self.ridge_model_.gamma_ if self.params["ridge_kernel"] == "rbf" else None,
        }
        self.noise_scale_ = None
        if self.oof_pcc_ is not None:
            self.noise_scale_ = self._calibrate_noise(sc_train, st_train)
            self.info_["noise_scale"] = self.noise_scale_

    def _calibrate_noise(self, sc_train, st_train, *, level: float = 0.90) -> float:
        """Widen the residual noise so that the out-of-fold predictions of the TRAINING genes
        fall inside the central ``level`` interval as often as stated (split-conformal style):
        the ``level`` quantile of |truth - prediction| / residual SD, over 1.645."""
        mean, sd = self.scale_.moments(sc_train)
        pred = np.clip(self.oof_pattern_ * sd + mean, 0.0, None)
        resid_sd = sd * np.sqrt(1.0 - self.expected_pcc(sc_train, exclude_self=True) ** 2)
        ratio = np.abs(st_train - pred) / np.where(resid_sd > 0, resid_sd, np.inf)
        return float(np.quantile(ratio, level) / 1.6449)

    def _choose_alpha(self, sc_train, st_train) -> tuple[float, dict]:
        n_genes = sc_train.shape[1]
        n_inner = max(2, min(self.params["inner_folds"], n_genes))
        order = np.random.default_rng(self.params["seed"]).permutation(n_genes)
        knn_oof = np.zeros_like(st_train)
        ridge_oof = np.zeros_like(st_train)
        for inner in np.array_split(order, n_inner):
            rest = np.setdiff1d(np.arange(n_genes), inner)
            if len(rest) < 2:
                continue
            st_rest = renormalize_log(st_train[:, rest])
            knn_oof[:, inner], ridge_oof[:, inner] = self._views(sc_train[:, rest], st_rest, sc_train[:, inner])
        scores = {a: mean_row_pcc((a * knn_oof + (1 - a) * ridge_oof).T, st_train.T) for a in ALPHA_GRID}
        best = max(scores, key=lambda a: (scores[a], -abs(a - 0.5)))
        self.oof_pattern_ = zscore(best * knn_oof + (1 - best) * ridge_oof)
        self.oof_pcc_ = np.mean(self.oof_pattern_ * zscore(st_train), axis=0)
        return best, {"inner_pcc_knn": scores[1.0], "inner_pcc_ridge": scores[0.0], "inner_pcc_blend": scores[best]}

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        knn = zscore(np.asarray(self.weights_ @ sc_target))
        ridge = zscore(self.ridge_model_._pattern(sc_target))
        return self.alpha_ * knn + (1 - self.alpha_) * ridge

    def expected_pcc(self, sc_target: np.ndarray, *, k: int = 5, exclude_self: bool = False) -> np.ndarray | None:
        """Per target gene: similarity-weighted out-of-fold PCC of its k most similar training genes
        (``exclude_self``: the targets are the training genes, each estimated from the others)."""
        if self.oof_pcc_ is None:
            return None
        sim = gene_features(as_dense(sc_target)) @ self.ridge_model_.x_train_.T
        if exclude_self:
            np.fill_diagonal(sim, -np.inf)
        return np.clip(similar_gene_average(sim, self.oof_pcc_, k=k), 0.0, 0.99)

    def predict_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> np.ndarray:
        """Bootstrap refits (model uncertainty) plus residual noise (what the model cannot explain).

        The residual SD of a gene is its predicted ST SD times sqrt(1 - r^2), with r its
        expected PCC from similar training genes' out-of-fold accuracy (a gene predicted poorly
        gets wide intervals), times one factor calibrated on the training genes' out-of-fold
        residuals. Without inner CV (fixed alpha) only the bootstrap is used. At most
        ``max_refits`` bootstrap refits are made and reused across samples; the noise is fresh
        for every sample, so many samples (e.g. 40, for a 5-95 % interval) stay cheap.
        """
        refits = super().predict_samples(sc_target, n_samples=min(n_samples, self.max_refits), seed=seed)
        samples = refits[np.arange(n_samples) % len(refits)]
        r = self.expected_pcc(sc_target)
        if r is None:
            return samples
        sc_target = as_dense(sc_target)
        _, sd = self.scale_.moments(sc_target)
        noise = np.random.default_rng(seed + 1).normal(size=samples.shape) * (self.noise_scale_ * sd * np.sqrt(1.0 - r**2))
        return np.clip(samples + noise, 0.0, None).astype(np.float32)

    def _bootstrap_clone(self) -> "KnnRidgeBlendImputer":
        params = dict(self.params, alpha=self.alpha_, ridge=self.ridge_model_.ridge_, gamma=self.ridge_model_.gamma_)
        return type(self)(**params)
