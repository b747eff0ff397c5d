"""Figures of the report (matplotlib; ``report.write_mqc_figure`` puts them in MultiQC).

Metric box plots per method; true vs predicted spatial maps for the best, median and worst
genes of the default method; maps of the imputed target genes; a UMAP of predicted and real
spots (paper Fig. 4); gene-gene distance heatmaps after hierarchical clustering, true vs
predicted (paper Fig. 5); training curves of the diffusion models per fold.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from causalged.evaluation.metrics import METRICS
from causalged.arrays import as_dense

LABELS = {"pcc": "PCC (higher better)", "ssim": "SSIM (higher better)", "rmse": "RMSE (lower better)", "js": "JS (lower better)"}


def pyplot():
    """matplotlib.pyplot on the Agg backend: figures are files, no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_boxplots(metrics: pd.DataFrame, *, title: str):
    """One panel per metric, one box per method (held-out protocol, normalized truth)."""
    plt = pyplot()
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


def spot_map(ax, xy: np.ndarray, values: np.ndarray, *, title: str, label: str = "log-normalized expression") -> None:
    """One gene over the tissue: square markers sized to the spot spacing, with a colour bar."""
    from scipy.spatial import cKDTree

    fig = ax.figure
    points = ax.scatter(xy[:, 0], xy[:, 1], c=values, marker="s", cmap="viridis", linewidths=0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.colorbar(points, ax=ax, fraction=0.046, pad=0.02, label=label)
    # marker side = spot spacing, measured on the axes as the colour bar left them
    spacing = np.median(cKDTree(xy).query(xy, k=2)[0][:, 1]) if len(xy) > 1 else 1.0
    span = max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), spacing) + spacing
    box = ax.get_position()
    side_pt = min(box.width * fig.get_figwidth(), box.height * fig.get_figheight()) * 72
    points.set_sizes([max(0.5, (0.95 * spacing / span * side_pt) ** 2)])


def spatial_maps(pred: ad.AnnData, metrics: pd.DataFrame, *, method: str, title: str, expected: pd.Series | None = None):
    """True vs predicted expression over spot coordinates for the best, median and worst gene.

    ``expected``: the trust estimate per gene (leave-self-out for panel genes), shown beside
    the measured PCC so a reader can see how far to believe it.
    """
    plt = pyplot()
    rows = metrics[(metrics.method == method) & (metrics.protocol == "heldout") & (metrics.truth == "normalized")].dropna(subset=["pcc"])
    ordered = rows.sort_values("pcc", ascending=False)
    picks = {"best": ordered.iloc[0], "median": ordered.iloc[len(ordered) // 2], "worst": ordered.iloc[-1]}
    xy = np.asarray(pred.obsm["spatial"], dtype=float)
    fig, axes = plt.subplots(2, 3, figsize=(16, 10), squeeze=False)
    for col, (label, row) in enumerate(picks.items()):
        j = pred.var_names.get_loc(row.gene)
        guess = f" (expected {expected[row.gene]:.3f})" if expected is not None and row.gene in expected and np.isfinite(expected[row.gene]) else ""
        spot_map(axes[0][col], xy, as_dense(pred.X)[:, j], title=f"{label}: {row.gene}, measured")
        spot_map(axes[1][col], xy, as_dense(pred.layers[method])[:, j], title=f"{row.gene}, {method}: PCC {row.pcc:.3f}{guess}")
    fig.suptitle(f"{title}: held-out panel genes, measured (top) vs predicted without them (bottom)", fontsize=12)
    return fig


def target_map_genes(var: pd.DataFrame, *, requested: Sequence[str], n_trusted: int = 2, max_requested: int = 6) -> dict[str, str]:
    """The genes :func:`target_maps` draws, and why: known from ``var`` alone, so that the
    imputation can keep just these columns while it writes the others a block at a time."""
    expected = var["expected_pcc"] if "expected_pcc" in var else pd.Series(np.nan, index=var.index)
    chosen = {g: "requested" for g in [g for g in requested if g in var.index][:max_requested]}
    ranked = expected.drop(list(chosen)).dropna().sort_values(ascending=False)
    chosen.update({g: "most trusted" for g in ranked.index[:n_trusted]})
    chosen.update({g: "least trusted" for g in ranked.index[::-1][:n_trusted] if g not in chosen})
    if not chosen:  # no trust estimate and nothing requested: the first genes
        chosen = {g: "imputed" for g in var.index[:n_trusted * 2]}
    return chosen


def target_maps(imputed: ad.AnnData, *, requested: Sequence[str], title: str, n_trusted: int = 2, max_requested: int = 6,
                truth: pd.Series | None = None):
    """Maps of imputed target genes: the requested ones first, then the most and least trusted.

    Titles carry ``var["expected_pcc"]``, and, where the simulator kept the truth (``truth``:
    PCC per gene against it), the PCC actually reached.
    """
    plt = pyplot()
    expected = imputed.var["expected_pcc"] if "expected_pcc" in imputed.var else pd.Series(np.nan, index=imputed.var_names)
    chosen = target_map_genes(imputed.var, requested=requested, n_trusted=n_trusted, max_requested=max_requested)
    ncols = min(4, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows), squeeze=False)
    xy = np.asarray(imputed.obsm["spatial"], dtype=float)
    values = as_dense(imputed.X)
    for ax, (gene, why) in zip(axes.ravel(), chosen.items()):
        parts = [f"{gene} ({why})"]
        if np.isfinite(expected.get(gene, np.nan)):
            parts.append(f"expected PCC {expected[gene]:.3f}")
        if truth is not None and gene in truth:
            parts.append(f"vs simulated truth {truth[gene]:.3f}")
        spot_map(ax, xy, values[:, imputed.var_names.get_loc(gene)], title="\n".join(parts), label="imputed (log-normalized)")
    for ax in axes.ravel()[len(chosen):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: imputed genes the panel did not measure", fontsize=12)
    return fig


def umap_spots(pred: ad.AnnData, *, method: str, title: str, seed: int = 0):
    """UMAP of the real spots and the predicted spots in one embedding (scanpy)."""
    import scanpy as sc

    plt = pyplot()
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

    plt = pyplot()

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


def training_curves(curves: dict[str, dict[str, dict]], *, title: str):
    """Training loss and validation PCC per epoch: one column per model, one line per fold.

    ``curves``: method -> fold -> {"epoch", "train_loss", "val_pcc", "best_epoch"} as the
    diffusion imputers record them (``info["curve"]``); dotted lines mark the epoch kept.
    """
    plt = pyplot()
    fig, axes = plt.subplots(2, len(curves), figsize=(4.6 * len(curves), 6.4), squeeze=False, sharex="col")
    for j, (method, by_fold) in enumerate(curves.items()):
        for fold, curve in sorted(by_fold.items(), key=lambda kv: int(kv[0])):
            epochs = np.asarray(curve["epoch"], dtype=float)
            axes[0, j].plot(epochs, curve["train_loss"], lw=0.8, alpha=0.7)
            val = np.asarray(curve["val_pcc"], dtype=float)
            keep = ~np.isnan(val)
            axes[1, j].plot(epochs[keep], val[keep], lw=0.8, alpha=0.7, label=f"fold {fold}")
            if curve.get("best_epoch") and np.isfinite(curve["best_epoch"]):
                axes[1, j].axvline(curve["best_epoch"], lw=0.5, ls=":", color=axes[1, j].lines[-1].get_color())
        axes[0, j].set(title=method, ylabel="training loss (diffusion target)", yscale="log")
        axes[1, j].set(xlabel="epoch (autoencoder epochs first)", ylabel="validation PCC (generated genes)")
    axes[1, -1].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{title}: training curves per fold; dotted = epoch kept by early stopping", fontsize=10)
    fig.tight_layout()
    return fig
