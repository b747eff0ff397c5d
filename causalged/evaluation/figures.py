"""Evaluation figures (PNG, named ``*_mqc.png`` so MultiQC embeds them).

Metric box plots per method; true vs predicted spatial maps for the best, median and worst
genes of the default method; a UMAP of predicted and real spots (paper Fig. 4); gene-gene
distance heatmaps after hierarchical clustering, true vs predicted (paper Fig. 5).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from causalged.evaluation.metrics import METRICS
from causalged.methods.base import as_dense

LABELS = {"pcc": "PCC (higher better)", "ssim": "SSIM (higher better)", "rmse": "RMSE (lower better)", "js": "JS (lower better)"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_boxplots(metrics: pd.DataFrame, *, title: str):
    """One panel per metric, one box per method (held-out protocol, normalized truth)."""
    plt = _plt()
    rows = metrics[(metrics.protocol == "heldout") & (metrics.truth == "normalized")]
    methods = list(dict.fromkeys(rows.method))
    fig, axes = plt.subplots(1, 4, figsize=(4 + 1.1 * len(methods) * 2, 4), squeeze=False)
    for ax, name in zip(axes[0], METRICS):
        data = [rows.loc[rows.method == m, name].dropna().to_numpy() for m in methods]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(LABELS[name], fontsize=9)
    fig.suptitle(f"{title}: per-gene scores, held-out genes, normalized truth", fontsize=10)
    fig.tight_layout()
    return fig


def spatial_maps(pred: ad.AnnData, metrics: pd.DataFrame, *, method: str, title: str):
    """True vs predicted expression over spot coordinates for the best, median and worst gene."""
    plt = _plt()
    rows = metrics[(metrics.method == method) & (metrics.protocol == "heldout") & (metrics.truth == "normalized")].dropna(subset=["pcc"])
    ordered = rows.sort_values("pcc", ascending=False)
    picks = {"best": ordered.iloc[0], "median": ordered.iloc[len(ordered) // 2], "worst": ordered.iloc[-1]}
    xy = np.asarray(pred.obsm["spatial"])
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5), squeeze=False)
    size = max(1.0, 4000 / max(pred.n_obs, 1))
    for col, (label, row) in enumerate(picks.items()):
        j = pred.var_names.get_loc(row.gene)
        for r, (name, values) in enumerate((("true", as_dense(pred.X)[:, j]), (method, as_dense(pred.layers[method])[:, j]))):
            ax = axes[r][col]
            ax.scatter(xy[:, 0], xy[:, 1], c=values, s=size, cmap="viridis", linewidths=0)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}: {row.gene} ({name})" + (f", PCC {row.pcc:.2f}" if r else ""), fontsize=9)
    fig.suptitle(f"{title}: held-out genes, true (top) vs predicted (bottom)", fontsize=10)
    fig.tight_layout()
    return fig


def umap_spots(pred: ad.AnnData, *, method: str, title: str, seed: int = 0):
    """UMAP of the real spots and the predicted spots in one embedding (scanpy)."""
    import scanpy as sc

    plt = _plt()
    truth = as_dense(pred.X)
    guess = as_dense(pred.layers[method])
    both = ad.AnnData(X=np.vstack([truth, guess]).astype(np.float32))
    both.obs["source"] = pd.Categorical(["real"] * pred.n_obs + [f"predicted ({method})"] * pred.n_obs)
    n_comps = max(2, min(30, pred.n_vars - 1, both.n_obs - 1))
    sc.pp.pca(both, n_comps=n_comps, random_state=seed)
    sc.pp.neighbors(both, n_neighbors=15, random_state=seed)
    sc.tl.umap(both, random_state=seed)
    fig, ax = plt.subplots(figsize=(6, 5))
    emb = both.obsm["X_umap"]
    for name, colour in zip(both.obs["source"].cat.categories, ("tab:orange", "tab:blue")):
        pick = (both.obs["source"] == name).to_numpy()
        ax.scatter(emb[pick, 0], emb[pick, 1], s=3, alpha=0.5, c=colour, label=name, linewidths=0)
    ax.legend(markerscale=4, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}: UMAP of real vs predicted spots (held-out genes)", fontsize=10)
    return fig


def gene_distance_heatmaps(pred: ad.AnnData, *, method: str, title: str):
    """Correlation distance between genes over spots, true vs predicted, in the true clustering's order."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    plt = _plt()

    def distance(x: np.ndarray) -> np.ndarray:
        d = 1 - np.nan_to_num(np.corrcoef(x.T), nan=0.0)
        np.fill_diagonal(d, 0)
        return (d + d.T) / 2

    true_d = distance(as_dense(pred.X))
    pred_d = distance(as_dense(pred.layers[method]))
    order = leaves_list(linkage(squareform(np.clip(true_d, 0, None), checks=False), method="average"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (name, d) in zip(axes, (("true", true_d), (f"predicted ({method})", pred_d))):
        im = ax.imshow(d[np.ix_(order, order)], cmap="magma", vmin=0, vmax=2)
        ax.set_title(f"{name}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="1 - Pearson r")
    fig.suptitle(f"{title}: gene-gene distance, clustered on the truth", fontsize=10)
    return fig
