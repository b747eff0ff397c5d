"""Per-gene imputation metrics (method.md section 5) and the accuracy score over methods.

Every function takes two spots x genes matrices (prediction, truth) and returns one value per
gene. The canonical definitions follow SpatialBenchmarking (Li et al. 2022): PCC of the raw
vectors; a single global SSIM after dividing each vector by its maximum; RMSE of z-scored
vectors; Jensen-Shannon divergence (natural log) of the vectors scaled to sum 1. A gene whose
predicted or true vector is constant has no defined correlation: every metric is NaN for it,
with one warning naming how many genes were affected, instead of a crash or a silent number.

``metric_set="paper"`` gives the public CausalGeD evaluation's variants (min-max scaling first,
``sqrt(MSE) + 1`` as RMSE, the square root of JS), always labelled as such in outputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import rel_entr

METRICS = ("pcc", "ssim", "rmse", "js")
#: True where a larger value is better (used for ranks in the accuracy score).
HIGHER_IS_BETTER = {"pcc": True, "ssim": True, "rmse": False, "js": False}
METRIC_SETS = ("canonical", "paper")


class ConstantVectorWarning(UserWarning):
    """A gene's predicted or true vector is constant: its metrics are NaN."""


def _as_2d(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.ndim == 1:
        pred, truth = pred[:, None], truth[:, None]
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    return pred, truth


def _defined(pred: np.ndarray, truth: np.ndarray, metric: str) -> np.ndarray:
    """Genes where neither vector is constant (nor non-finite); warn about the others."""
    ok = (np.ptp(pred, axis=0) > 0) & (np.ptp(truth, axis=0) > 0)
    ok &= np.all(np.isfinite(pred), axis=0) & np.all(np.isfinite(truth), axis=0)
    if not ok.all():
        warnings.warn(f"{metric}: {int((~ok).sum())} gene(s) with a constant or non-finite vector scored NaN", ConstantVectorWarning, stacklevel=3)
    return ok


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / x.std(axis=0)


def pcc(pred, truth) -> np.ndarray:
    """Pearson correlation per gene (column)."""
    pred, truth = _as_2d(pred, truth)
    out = np.full(pred.shape[1], np.nan)
    ok = _defined(pred, truth, "PCC")
    out[ok] = np.mean(_zscore(pred[:, ok]) * _zscore(truth[:, ok]), axis=0)
    return out


def rmse(pred, truth) -> np.ndarray:
    """Root mean squared difference of the z-scored vectors (equals sqrt(2 (1 - PCC)))."""
    pred, truth = _as_2d(pred, truth)
    out = np.full(pred.shape[1], np.nan)
    ok = _defined(pred, truth, "RMSE")
    out[ok] = np.sqrt(np.mean((_zscore(pred[:, ok]) - _zscore(truth[:, ok])) ** 2, axis=0))
    return out


def _global_ssim(x: np.ndarray, y: np.ndarray, *, dynamic_range: float = 1.0) -> np.ndarray:
    """One SSIM over all spots per column: luminance x contrast x structure, population statistics."""
    c1 = (0.01 * dynamic_range) ** 2
    c2 = (0.03 * dynamic_range) ** 2
    c3 = c2 / 2
    mx, my = x.mean(axis=0), y.mean(axis=0)
    sx, sy = x.std(axis=0), y.std(axis=0)
    sxy = np.mean((x - mx) * (y - my), axis=0)
    luminance = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    contrast = (2 * sx * sy + c2) / (sx**2 + sy**2 + c2)
    structure = (sxy + c3) / (sx * sy + c3)
    return luminance * contrast * structure


def ssim(pred, truth) -> np.ndarray:
    """SpatialBenchmarking SSIM: each vector divided by its max, then one global SSIM (M = 1)."""
    pred, truth = _as_2d(pred, truth)
    out = np.full(pred.shape[1], np.nan)
    ok = _defined(pred, truth, "SSIM") & _positive_max(pred, truth, "SSIM")
    out[ok] = _global_ssim(pred[:, ok] / pred[:, ok].max(axis=0), truth[:, ok] / truth[:, ok].max(axis=0))
    return out


def _positive_max(pred: np.ndarray, truth: np.ndarray, metric: str) -> np.ndarray:
    ok = (pred.max(axis=0) > 0) & (truth.max(axis=0) > 0)
    if not ok.all():
        warnings.warn(f"{metric}: {int((~ok).sum())} gene(s) with no positive value scored NaN", ConstantVectorWarning, stacklevel=3)
    return ok


def js(pred, truth) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) of the vectors scaled to sum 1.

    Negative entries (impossible on a count or log1p scale) make the gene NaN with a warning.
    """
    pred, truth = _as_2d(pred, truth)
    out = np.full(pred.shape[1], np.nan)
    ok = _defined(pred, truth, "JS")
    negative = (pred.min(axis=0) < 0) | (truth.min(axis=0) < 0)
    if (ok & negative).any():
        warnings.warn(f"JS: {int((ok & negative).sum())} gene(s) with negative values scored NaN", ConstantVectorWarning, stacklevel=2)
    ok &= ~negative
    out[ok] = _js_divergence(pred[:, ok], truth[:, ok])
    return out


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=0)
    q = q / q.sum(axis=0)
    m = (p + q) / 2
    return 0.5 * rel_entr(p, m).sum(axis=0) + 0.5 * rel_entr(q, m).sum(axis=0)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo = x.min(axis=0)
    span = x.max(axis=0) - lo
    return (x - lo) / np.where(span > 0, span, 1.0)


def paper_metrics(pred, truth) -> dict[str, np.ndarray]:
    """The public CausalGeD evaluation's variants: min-max scale both, then PCC, SSIM,
    sqrt(MSE) + 1 and sqrt(JS). Labelled "paper" wherever reported; not comparable to canonical."""
    pred, truth = _as_2d(pred, truth)
    ok = _defined(pred, truth, "paper metrics")
    p, t = _minmax(pred), _minmax(truth)
    out = {name: np.full(pred.shape[1], np.nan) for name in METRICS}
    out["pcc"][ok] = np.mean(_zscore(p[:, ok]) * _zscore(t[:, ok]), axis=0)
    out["ssim"][ok] = _global_ssim(p[:, ok], t[:, ok])
    out["rmse"][ok] = np.sqrt(np.mean((p[:, ok] - t[:, ok]) ** 2, axis=0)) + 1
    out["js"][ok] = np.sqrt(np.clip(_js_divergence(p[:, ok], t[:, ok]), 0, None))
    return out


def score_genes(pred, truth, *, genes=None, metric_set: str = "canonical") -> pd.DataFrame:
    """All four metrics per gene as a DataFrame (index = gene)."""
    if metric_set not in METRIC_SETS:
        raise ValueError(f"metric_set must be one of {METRIC_SETS}, got {metric_set!r}")
    pred, truth = _as_2d(pred, truth)
    if metric_set == "paper":
        values = paper_metrics(pred, truth)
    else:
        with warnings.catch_warnings(record=True) as caught:  # one warning per call, not one per metric
            warnings.simplefilter("always")
            values = {"pcc": pcc(pred, truth), "ssim": ssim(pred, truth), "rmse": rmse(pred, truth), "js": js(pred, truth)}
        for message in {str(w.message) for w in caught if issubclass(w.category, ConstantVectorWarning)}:
            warnings.warn(message, ConstantVectorWarning, stacklevel=2)
    index = pd.Index(genes if genes is not None else range(pred.shape[1]), name="gene")
    return pd.DataFrame(values, index=index)


def accuracy_score(summary: pd.DataFrame) -> pd.Series:
    """AS over methods on one dataset: the mean over metrics of each method's rank.

    ``summary`` has one row per method and the mean of each metric over genes as columns.
    Ranks run from 1 (worst) to the number of methods (best), ties averaged, so a higher AS is
    better and the best possible AS equals the number of methods (SpatialBenchmarking's form).
    """
    ranks = pd.DataFrame(index=summary.index)
    for name in METRICS:
        ranks[name] = summary[name].rank(ascending=HIGHER_IS_BETTER[name], method="average")
    return ranks.mean(axis=1).rename("AS")
