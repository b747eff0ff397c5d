"""Per-gene trust: how accurate each imputed gene is expected to be, and whether the stated
uncertainty holds on genes whose truth we know.

- Panel genes carry their cross-validated PCC (held-out protocol).
- Genes outside the panel carry an estimate: the similarity-weighted mean CV PCC of the k
  panel genes most correlated with them in scRNA-seq. The estimate is checked on the panel
  genes themselves (each estimated from the others) and that check is reported.
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
from causalged.methods.base import as_dense, similar_gene_average
from causalged.methods.kernel_ridge import gene_features

NOMINAL_COVERAGE = 0.90


def expected_accuracy(sc_data: ad.AnnData, panel_scores: pd.Series, genes: list[str], *, k: int = 5) -> pd.Series:
    """Estimated PCC of each gene from the CV scores of its k most similar panel genes
    (Pearson correlation over cells). A gene never uses its own score, so panel genes get
    an honest leave-self-out estimate."""
    scores = panel_scores.dropna()
    reference = list(scores.index)
    sim = gene_features(as_dense(sc_data[:, list(genes)].X)) @ gene_features(as_dense(sc_data[:, reference].X)).T
    for i, gene in enumerate(genes):
        if gene in scores.index:
            sim[i, reference.index(gene)] = -np.inf
    return pd.Series(similar_gene_average(sim, scores.to_numpy(), k=k), index=list(genes), name="expected_pcc")


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
    estimate = expected_accuracy(sc_data, cv, panel + targets, k=k)
    table = pd.DataFrame({"gene": panel + targets, "kind": ["panel"] * len(panel) + ["target"] * len(targets)})
    table["method"] = method
    table["cv_pcc"] = table.gene.map(cv)
    table["expected_pcc"] = table.gene.map(estimate)
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
