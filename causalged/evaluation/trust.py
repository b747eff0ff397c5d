"""Per-gene trust: how accurate each imputed gene is expected to be, and whether the stated
uncertainty holds on genes whose truth we know.

- Panel genes carry their cross-validated PCC (held-out protocol).
- Every gene gets an *expected* PCC from a small ridge model fitted on the panel genes' CV
  PCCs. Its features come from the scRNA-seq reference only, so they exist for genes outside
  the panel too (:func:`trust_features`): how well the panel genes explain the gene across
  cells, its expression level, detection and spread, and the CV scores of its most similar
  panel genes. For panel genes every feature leaves the gene itself out.
- The estimator's own error is measured by nested cross-validation over the panel genes
  (fit on four fifths of their scores, estimate the rest) and reported beside it.
- ``trust`` flags: ``high`` (expected PCC >= 0.5), ``medium`` (>= 0.3), ``low`` (below).
- Interval coverage: the share of spots whose true value lies in the 5-95 % range of the
  method's samples (nominal 0.90), reported as measured. A pure bootstrap over training genes
  measures model uncertainty only and covers far less; the default method adds residual noise
  calibrated on its training genes' out-of-fold errors (see ``methods.blend``).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from causalged.evaluation.crossval import INTERVAL_SUFFIXES
from causalged.arrays import as_dense, similar_gene_average
from causalged.methods.kernel_ridge import gene_features

NOMINAL_COVERAGE = 0.90


TRUST_CUTOFFS = {"high": 0.5, "medium": 0.3}


def trust_features(sc_data: ad.AnnData, genes: list[str], panel: list[str], panel_scores: pd.Series, *, k: int = 5,
                   ridge: float = 0.1, max_cells: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Genes x features from the reference alone; a panel gene never sees itself.

    ``explained``: R^2 of the gene from the panel genes across cells (ridge, in correlation
    form: ``c' (C + ridge I)^-1 c``; for a panel gene the same over the other panel genes,
    ``1 + ridge - 1 / [(C + ridge I)^-1]_jj`` by the Schur complement). ``neighbour_pcc``: the
    similarity-weighted CV PCC of its ``k`` most similar panel genes.
    """
    rng = np.random.default_rng(seed)
    cells = np.sort(rng.choice(sc_data.n_obs, max_cells, replace=False)) if sc_data.n_obs > max_cells else np.arange(sc_data.n_obs)
    values = as_dense(sc_data[cells, list(genes)].X)
    ref = gene_features(as_dense(sc_data[cells, list(panel)].X))  # panel genes x cells, unit norm
    feats = gene_features(values)
    corr_panel = ref @ ref.T
    corr = feats @ ref.T  # genes x panel genes
    inverse = np.linalg.inv(corr_panel + ridge * np.eye(len(panel)))
    explained = np.einsum("ij,jk,ik->i", corr, inverse, corr)
    where = {g: i for i, g in enumerate(panel)}
    similarity = corr.copy()
    for i, gene in enumerate(genes):
        if gene in where:
            j = where[gene]
            explained[i] = 1.0 + ridge - 1.0 / inverse[j, j]  # Schur complement: c' (C_-j + ridge I)^-1 c of the others
            similarity[i, j] = -np.inf
    scores = panel_scores.reindex(panel).to_numpy(dtype=float)
    known = np.isfinite(scores)
    top = np.sort(np.where(np.isfinite(similarity[:, known]), similarity[:, known], -1), axis=1)[:, ::-1][:, :k]
    return pd.DataFrame({
        "explained": np.clip(explained, 0, 1),
        "neighbour_pcc": similar_gene_average(similarity[:, known], scores[known], k=k),
        "top_similarity": top.mean(axis=1),
        "log_mean": values.mean(axis=0),
        "sd": values.std(axis=0),
        "detected": (values > 0).mean(axis=0),
    }, index=list(genes))


def _ridge(features: pd.DataFrame, target: pd.Series):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))).fit(features.to_numpy(), target.to_numpy())


def expected_accuracy(sc_data: ad.AnnData, panel_scores: pd.Series, genes: list[str], *, k: int = 5, n_folds: int = 5,
                      seed: int = 0) -> tuple[pd.Series, pd.Series]:
    """Expected PCC of each gene, and for panel genes the nested-CV estimate that measures it.

    Returns ``(expected, nested)``: ``expected`` from the model fitted on every panel gene
    (what target genes get), ``nested`` for panel genes only, each from a model that never saw
    that gene's score (the honest check of the estimator).
    """
    scores = panel_scores.dropna()
    panel = list(scores.index)
    features = trust_features(sc_data, list(dict.fromkeys(list(genes) + panel)), panel, scores, k=k, seed=seed)
    if len(panel) < 6:  # too few scores to fit a model: the similar genes' average
        fallback = features["neighbour_pcc"]
        return fallback.reindex(genes).rename("expected_pcc"), fallback.reindex(panel)
    expected = pd.Series(_ridge(features.loc[panel], scores).predict(features.loc[list(genes)].to_numpy()), index=list(genes))
    nested = pd.Series(np.nan, index=panel)
    order = np.random.default_rng(seed).permutation(len(panel))
    for fold in np.array_split(order, min(n_folds, len(panel))):
        held = [panel[i] for i in fold]
        rest = [g for g in panel if g not in set(held)]
        nested[held] = _ridge(features.loc[rest], scores[rest]).predict(features.loc[held].to_numpy())
    clip = lambda x: x.clip(-1, 1)  # noqa: E731
    return clip(expected).rename("expected_pcc"), clip(nested)


def trust_flag(expected: pd.Series) -> pd.Series:
    """high / medium / low by :data:`TRUST_CUTOFFS` (NaN stays unflagged)."""
    flags = np.where(expected >= TRUST_CUTOFFS["high"], "high", np.where(expected >= TRUST_CUTOFFS["medium"], "medium", "low"))
    return pd.Series(np.where(expected.isna(), "", flags), index=expected.index, name="trust")


def interval_coverage(pred: ad.AnnData, method: str) -> pd.Series | None:
    """Per gene: share of spots with the normalized truth inside the method's 5-95 % interval."""
    lo, hi = (method + s for s in INTERVAL_SUFFIXES)
    if lo not in pred.layers or hi not in pred.layers:
        return None
    truth = as_dense(pred.X)
    inside = (truth >= as_dense(pred.layers[lo])) & (truth <= as_dense(pred.layers[hi]))
    return pd.Series(inside.mean(axis=0), index=pred.var_names, name="coverage_90")


def trust_table(sc_data: ad.AnnData, pred: ad.AnnData, metrics: pd.DataFrame, *, method: str, target_genes: list[str], k: int = 5) -> tuple[pd.DataFrame, dict]:
    """One row per panel and target gene: CV PCC (panel), estimated PCC, interval coverage.

    Returns the table and a summary: how well the estimate tracks the CV score on panel genes
    (Pearson r, mean absolute error) and the mean coverage against the nominal 0.90.
    """
    rows = metrics[(metrics.method == method) & (metrics.protocol == "heldout") & (metrics.truth == "normalized")]
    cv = rows.set_index("gene")["pcc"]
    panel = list(cv.index)
    targets = [g for g in target_genes if g in sc_data.var_names and g not in cv.index]
    estimate, nested = expected_accuracy(sc_data, cv, panel + targets, k=k)
    table = pd.DataFrame({"gene": panel + targets, "kind": ["panel"] * len(panel) + ["target"] * len(targets)})
    table["method"] = method
    table["cv_pcc"] = table.gene.map(cv)
    # panel genes show the nested estimate (what the estimator says without their own score); targets the full fit
    table["expected_pcc"] = np.where(table.kind == "panel", table.gene.map(nested), table.gene.map(estimate))
    table["trust"] = trust_flag(table["expected_pcc"]).to_numpy()
    coverage = interval_coverage(pred, method)
    table["coverage_90"] = table.gene.map(coverage) if coverage is not None else np.nan
    check = table[table.kind == "panel"].dropna(subset=["cv_pcc", "expected_pcc"])
    both_vary = len(check) > 2 and check.cv_pcc.std() > 0 and check.expected_pcc.std() > 0
    summary = {
        "method": method,
        "n_panel": len(panel),
        "n_target": len(targets),
        "estimate_vs_cv_pearson": float(np.corrcoef(check.cv_pcc, check.expected_pcc)[0, 1]) if both_vary else float("nan"),
        "estimate_mae": float((check.cv_pcc - check.expected_pcc).abs().mean()) if len(check) else float("nan"),
        "mean_coverage_90": float(table.coverage_90.mean()) if coverage is not None else float("nan"),
        "coverage_min": float(table.coverage_90.min()) if coverage is not None else float("nan"),
        "coverage_max": float(table.coverage_90.max()) if coverage is not None else float("nan"),
        "nominal_coverage": NOMINAL_COVERAGE,
    }
    return table, summary
