"""Scores of cross-validated predictions: one row per gene x method x protocol x truth.

``metrics.csv`` columns: gene, fold, method, protocol, truth, metric_set, pcc, ssim, rmse, js.
``truth`` is ``normalized`` (full-panel log-normalized ST, the primary score) or
``raw_counts`` (SpatialBenchmarking's convention, secondary: rewards predicting spot size, so
the ``spot_depth`` floor is always among the methods). ``protocol`` is ``heldout`` or, only
when asked for, ``paper-inpainting`` (with its ``noise_control`` pseudo-method).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from causalged.evaluation.crossval import noise_control, paper_inpainting
from causalged.evaluation.metrics import METRICS, accuracy_score, score_genes
from causalged.arrays import as_dense

NOISE_CONTROL = "noise_control"


def score_predictions(pred: ad.AnnData, *, metric_set: str = "canonical", protocol: str = "heldout", seed: int = 0) -> pd.DataFrame:
    """Score every method layer of a combined predictions AnnData (see crossval.combine_folds)."""
    methods = list(pred.uns["causalged_crossval"]["methods"])
    truths = {"normalized": as_dense(pred.X)}
    if "counts" in pred.layers:
        truths["raw_counts"] = as_dense(pred.layers["counts"])
    fold = pred.var["fold"].to_numpy() if "fold" in pred.var else np.full(pred.n_vars, -1)
    frames = []

    def add(values: np.ndarray, truth: np.ndarray, *, method: str, protocol_name: str, truth_name: str) -> None:
        df = score_genes(values, truth, genes=pred.var_names, metric_set=metric_set).reset_index()
        df.insert(1, "fold", fold)
        df.insert(2, "method", method)
        df.insert(3, "protocol", protocol_name)
        df.insert(4, "truth", truth_name)
        df.insert(5, "metric_set", metric_set)
        frames.append(df)

    for method in methods:
        values = as_dense(pred.layers[method])
        for truth_name, truth in truths.items():
            add(values, truth, method=method, protocol_name="heldout", truth_name=truth_name)
    if protocol == "paper-inpainting":
        truth = truths["normalized"]
        candidates = {m: as_dense(pred.layers[m]) for m in methods}
        candidates[NOISE_CONTROL] = noise_control(truth, rng=np.random.default_rng(seed + 1))
        for method, values in candidates.items():
            hidden_rng = np.random.default_rng(seed)  # the same hidden entries for every method and the control
            add(paper_inpainting(values, truth, rng=hidden_rng), truth, method=method, protocol_name="paper-inpainting", truth_name="normalized")
    elif protocol != "heldout":
        raise ValueError(f"protocol must be 'heldout' or 'paper-inpainting', got {protocol!r}")
    return pd.concat(frames, ignore_index=True)


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over genes per method, and the AS over methods within each protocol x truth."""
    keys = ["protocol", "truth", "metric_set", "method"]
    grouped = metrics.groupby(keys, sort=False)
    summary = grouped[list(METRICS)].mean()
    spread = grouped[list(METRICS)].std().add_suffix("_sd")
    summary = summary.join(spread)
    summary["n_genes"] = grouped["pcc"].size()
    summary["n_nan"] = grouped["pcc"].apply(lambda s: int(s.isna().sum()))
    parts = []
    for _, block in summary.groupby(level=[0, 1, 2], sort=False):
        block = block.copy()
        block["AS"] = accuracy_score(block.droplevel([0, 1, 2])).to_numpy()
        parts.append(block)
    return pd.concat(parts).reset_index()
