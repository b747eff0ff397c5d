"""Causal analysis (method.md section 8): which genes help predict, or drive, which.

Two families of directed scores per ordered gene pair (source A, target B):

- ``granger``: a spatial Granger-style F-test on the ST data, with the spatial neighbourhood
  standing in for time: does the neighbourhood mean (*lag*) of A improve the prediction of B
  beyond B's own lag? Benjamini-Hochberg q-values over all pairs. The cost is quadratic in the
  genes, so ``max_genes`` keeps the most variable ones; the reference has no spatial order, so
  it gets no Granger test.
- causal linearization (``linear_ridge``, ``knn_cells``): perturb one panel gene's measured ST
  map inside a model, record every gene's response (the total effects ``T``) and read direct
  effects as ``W = -T^-1`` (regularized), which is exact for a linear drift.

Models that never read another gene's measured map (the imputers' other views, the diffusion
model) cannot respond to such a perturbation; their response is zero by construction, so it is
not computed (:data:`NOT_RESPONSIVE` says so in every output). Details: docs/method-notes.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from causalged.errors import InputError
from causalged.arrays import as_dense, zscore

log = logging.getLogger(__name__)

COLUMNS = ["source", "target", "method", "statistic", "p_value", "q_value", "effect"]
METHODS = ("granger", "linear_ridge", "knn_cells")
DEFAULT_METHODS = METHODS
#: Models whose perturbation response is zero by construction, and why (written to the outputs).
NOT_RESPONSIVE = {
    "causalged": "the CausalGeD diffusion model maps one gene's scRNA-seq vector to that gene's spatial map; "
                 "it never reads another gene's measured map, so perturbing one gene's measurement cannot change "
                 "another gene's output: not computed",
}
#: What the validation on simulated data found (docs/causality.md), repeated in every output.
VALIDATION_NOTE = ("Directed scores, not proven causes. On simulated data with a known network (docs/causality.md) "
                   "no method recovers the network well: read these as hypotheses to test.")
#: |effect| at or above this (per unit of the target's own decay) is called an edge by the linearization.
DEFAULT_THRESHOLD = 0.1
#: Tikhonov strength of the inverse, relative to the mean squared singular value of T.
DEFAULT_RIDGE = 1e-3


# ----------------------------------------------------------------------------- inputs


def select_genes(matrix: np.ndarray, genes: Sequence[str], *, max_genes: int | None = 100,
                 path: str | Path | None = None) -> np.ndarray:
    """Column indices kept for the pair tests: non-constant genes, the ``max_genes`` most variable.

    Raises :class:`InputError` when fewer than 3 genes vary (a pair test needs a third gene to
    be more than a correlation, and the linearization a matrix to invert).
    """
    matrix = as_dense(matrix)
    if matrix.shape[1] < 3:
        raise InputError(path, f"only {matrix.shape[1]} gene(s) in the spatial panel; the pair tests need at least 3",
                         "run the causal analysis on a panel of 3 or more genes")
    var = matrix.var(axis=0)
    varying = np.flatnonzero(var > 1e-12)
    if len(varying) < 3:
        constant = [genes[i] for i in np.flatnonzero(var <= 1e-12)][:5]
        raise InputError(path, f"only {len(varying)} of {matrix.shape[1]} genes vary across spots (constant: {', '.join(constant)}...)",
                         "drop constant genes, or check that the matrix holds expression values and not a placeholder")
    if max_genes is not None and max_genes < 3:
        raise InputError(None, f"max_genes={max_genes} is below 3", "give --max-genes 3 or more")
    if max_genes is not None and len(varying) > max_genes:
        varying = np.sort(varying[np.argsort(-var[varying], kind="stable")[:max_genes]])
    log.info("causality: %d genes -> %d ordered pairs (quadratic in the gene count)", len(varying), len(varying) * (len(varying) - 1))
    return varying


def spatial_neighbors(coords: np.ndarray, *, n_neighbors: int = 8, radius: float | None = None,
                      path: str | Path | None = None) -> sp.csr_matrix:
    """Row-normalized spots x spots neighbour weights (self excluded): the lag operator.

    ``radius`` (coordinate units) replaces the k nearest spots by every spot within it; a spot
    with no neighbour in the radius is an error (its lag would be undefined).
    """
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=float)
    n = len(coords)
    if n < 5:
        raise InputError(path, f"only {n} spots; a spatial lag needs neighbours", "run on a section with more spots")
    tree = cKDTree(coords)
    if radius is None:
        k = min(int(n_neighbors), n - 1)
        if k < 1:
            raise InputError(None, f"n_neighbors={n_neighbors}", "give --n-neighbors 1 or more")
        _, idx = tree.query(coords, k=k + 1)
        keep = idx != np.arange(n)[:, None]
        keep[keep.all(axis=1), -1] = False  # duplicated coordinates: self may not come first
        rows = np.repeat(np.arange(n), k + 1).reshape(n, k + 1)[keep]
        cols = idx[keep]
    else:
        pairs = tree.query_pairs(float(radius), output_type="ndarray")
        rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
        cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
        lonely = np.setdiff1d(np.arange(n), rows)
        if len(lonely):
            raise InputError(path, f"{len(lonely)} spots have no other spot within radius {radius}",
                             "give a larger --radius, or use --n-neighbors instead")
    weights = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    degree = np.asarray(weights.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / degree) @ weights)


# ----------------------------------------------------------------------------- Granger-style test


def granger_test(matrix: np.ndarray, neighbors: sp.spmatrix, *, genes: Sequence[str],
                 covariates: np.ndarray | None = None) -> pd.DataFrame:
    """Spatial Granger-style F-test for every ordered pair of columns of ``matrix`` (spots x genes).

    Vectorized per target by Frisch-Waugh-Lovell: B and every lag(A) are residualized on the
    restricted design once, then each pair's extra sum of squares is one inner product.
    """
    x = as_dense(matrix)
    n, g = x.shape
    lag = np.asarray(neighbors @ x)
    base = [np.ones((n, 1))]
    if covariates is not None:
        cov = as_dense(covariates).reshape(n, -1)
        cov = cov[:, cov.std(axis=0) > 0]
        base.append(cov)
    base = np.hstack(base)
    x_sd, lag_sd = x.std(axis=0), lag.std(axis=0)
    rows = []
    for b in range(g):
        design = np.hstack([base, lag[:, [b]]])
        q, r = np.linalg.qr(design)
        q = q[:, np.abs(np.diag(r)) > 1e-10 * max(1.0, np.abs(r).max())]  # drop collinear columns
        p_restricted = q.shape[1]
        resid_b = x[:, b] - q @ (q.T @ x[:, b])
        resid_lag = lag - q @ (q.T @ lag)
        rss_r = float(resid_b @ resid_b)
        sxy = resid_lag.T @ resid_b
        sxx = np.einsum("ij,ij->j", resid_lag, resid_lag)
        ok = sxx > 1e-12 * np.maximum(1.0, (lag**2).sum(axis=0))
        gain = np.where(ok, sxy**2 / np.where(ok, sxx, 1.0), 0.0)
        rss_f = np.maximum(rss_r - gain, 1e-300)
        df = n - p_restricted - 1
        f_stat = np.where(ok, gain / (rss_f / df), 0.0)
        coef = np.where(ok, sxy / np.where(ok, sxx, 1.0), 0.0)
        effect = coef * lag_sd / (x_sd[b] if x_sd[b] > 0 else 1.0)
        p_value = np.where(ok, stats.f.sf(f_stat, 1, df), 1.0)
        others = np.arange(g) != b
        rows.append(pd.DataFrame({"source": np.asarray(genes, dtype=object)[others], "target": genes[b], "method": "granger",
                                  "statistic": f_stat[others], "p_value": p_value[others], "effect": effect[others]}))
    out = pd.concat(rows, ignore_index=True)
    out["q_value"] = stats.false_discovery_control(out["p_value"].to_numpy(), method="bh") if len(out) else []
    return out[COLUMNS]


# ----------------------------------------------------------------------------- causal linearization


def total_effects(respond: Callable[[int, float], np.ndarray], n_genes: int, *, delta: float = 1.0) -> np.ndarray:
    """T[a, b] = response of gene b to a shift ``delta`` of gene a, per unit of the shift.

    ``respond(a, delta)`` returns the change of every gene's (mean) output.
    """
    return np.vstack([np.asarray(respond(a, delta), dtype=float) / delta for a in range(n_genes)])


def direct_effects(total: np.ndarray, *, ridge: float = DEFAULT_RIDGE, normalize: bool = True) -> np.ndarray:
    """W = -T^-1, the inverse regularized as (T^T T + lam I)^-1 T^T, lam = ridge * mean squared singular value.

    ``ridge=0`` is the exact inverse. With ``normalize`` every column (target) is divided by
    the magnitude of its diagonal (its own decay), which fixes the scale W is known up to.
    """
    t = np.asarray(total, dtype=float)
    if ridge > 0:
        lam = ridge * float(np.mean(np.linalg.svd(t, compute_uv=False) ** 2))
        inverse = np.linalg.solve(t.T @ t + lam * np.eye(len(t)), t.T)
    else:
        inverse = np.linalg.inv(t)
    w = -inverse
    if normalize:
        decay = np.abs(np.diag(w))
        w = w / np.where(decay > 0, decay, 1.0)[None, :]
    return w


def linearization_table(w: np.ndarray, *, genes: Sequence[str], method: str) -> pd.DataFrame:
    """Off-diagonal entries of W as result rows; statistic = |effect|, no p-value (not a test)."""
    a, b = np.where(~np.eye(len(genes), dtype=bool))
    effect = w[a, b]
    return pd.DataFrame({
        "source": np.asarray(genes)[a], "target": np.asarray(genes)[b], "method": method,
        "statistic": np.abs(effect), "p_value": np.nan, "q_value": np.nan, "effect": effect,
    })[COLUMNS]


def ridge_total_effects(sc_panel: np.ndarray, st_panel: np.ndarray, *, kernel: str = "rbf",
                        ridge: float | None = None, gamma: float | None = None) -> tuple[np.ndarray, dict]:
    """T of the default method's kernel-ridge view, exact (it is linear in the measured maps).

    Each panel gene b is predicted from the other panel genes' z-scored ST maps with
    leave-one-gene-out ridge weights ``H[b, a] / (1 - H[b, b])``; ridge strength (and width)
    are chosen as the imputer chooses them (leave-one-gene-out on these genes).
    """
    from causalged.methods.kernel_ridge import KernelRidgeImputer, gene_features, gene_kernel

    model = KernelRidgeImputer(kernel=kernel, ridge=ridge, gamma=gamma).fit(sc_panel, st_panel)
    features = gene_features(as_dense(sc_panel))
    k = gene_kernel(features, features, kernel=kernel, gamma=model.gamma_)
    hat = k @ np.linalg.inv(k + model.ridge_ * np.eye(len(k)))
    loo = hat / np.clip(1.0 - np.diag(hat), 1e-9, None)[:, None]  # row b: weights of the other genes
    total = loo.T.copy()
    np.fill_diagonal(total, 1.0)
    return total, {"kernel": kernel, "ridge": model.ridge_, "gamma": model.gamma_}


def knn_total_effects(sc_panel: np.ndarray, st_panel: np.ndarray, *, k: int = 50, n_pcs: int = 50,
                      delta: float = 1.0, max_spots: int = 1000, seed: int = 0) -> tuple[np.ndarray, dict]:
    """T of the spot-wise kNN-over-cells generator, by finite differences.

    The generator: z-score each modality's panel genes, project spots and cells on one joint
    PCA, take each spot's k most cosine-similar cells (weights = clipped similarity) and output
    their z-scored panel profiles. Perturbation: gene a's measured map + ``delta`` SD at every
    spot, projected with the same PCA, neighbours searched again; response = mean output
    change over spots (``max_spots`` spots drawn once, for speed).
    """
    from sklearn.decomposition import PCA

    from causalged.methods.knn import neighbour_weights, top_cosine

    sc_z, st_z = zscore(as_dense(sc_panel)), zscore(as_dense(st_panel))
    if len(st_z) > max_spots:
        st_z = st_z[np.sort(np.random.default_rng(seed).choice(len(st_z), max_spots, replace=False))]
    n_comp = max(1, min(n_pcs, sc_z.shape[1] - 1))
    pca = PCA(n_components=n_comp, svd_solver="full", random_state=seed).fit(np.vstack([sc_z, zscore(as_dense(st_panel))]))
    cells = pca.transform(sc_z)
    k = min(k, len(cells))

    def generate(spots_z: np.ndarray) -> np.ndarray:
        sim, idx = top_cosine(pca.transform(spots_z), cells, k=k)
        return np.einsum("sk,skg->sg", neighbour_weights(sim), sc_z[idx])

    base = generate(st_z).mean(axis=0)

    def respond(a: int, shift: float) -> np.ndarray:
        moved = st_z.copy()
        moved[:, a] += shift
        out = generate(moved).mean(axis=0) - base
        out[a] = shift  # the intervention sets the perturbed gene
        return out

    return total_effects(respond, sc_z.shape[1], delta=delta), {"k": k, "n_pcs": n_comp, "delta_sd": delta, "n_spots": len(st_z)}


# ----------------------------------------------------------------------------- the whole analysis


@dataclass
class CausalityResult:
    table: pd.DataFrame
    genes: list[str]
    info: dict = field(default_factory=dict)


def causality(st_data, sc_data=None, *, methods: Sequence[str] = DEFAULT_METHODS, max_genes: int | None = 100,
              n_neighbors: int = 8, radius: float | None = None, covariates: str | None = None,
              threshold: float = DEFAULT_THRESHOLD, ridge: float = DEFAULT_RIDGE, delta: float = 1.0,
              seed: int = 0, st_path: str | Path | None = None, sc_path: str | Path | None = None) -> CausalityResult:
    """Run the chosen methods on the ST panel genes (log-normalized ``st_data``; ``sc_data`` for the linearizations).

    ``covariates``: an ``obsm`` key or comma-separated ``obs`` columns added to both Granger models
    (e.g. cell-type fractions), categorical columns one-hot encoded.
    """
    from causalged.io import spatial_coords

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(None, f"unknown causality method(s) {', '.join(unknown)}", f"choose from {', '.join(METHODS)}")
    needs_sc = [m for m in methods if m != "granger"]
    x_all = as_dense(st_data.X)
    names = list(map(str, st_data.var_names))
    keep = select_genes(x_all, names, max_genes=max_genes, path=st_path)
    genes = [names[i] for i in keep]
    x = x_all[:, keep]
    info: dict = {"warning": VALIDATION_NOTE, "n_spots": int(x.shape[0]), "n_genes": len(genes), "n_pairs": len(genes) * (len(genes) - 1),
                  "genes": genes, "methods": list(methods), "not_computed": dict(NOT_RESPONSIVE), "threshold": threshold}
    tables = []
    if "granger" in methods:
        coords = spatial_coords(st_data, path=st_path)
        neighbors = spatial_neighbors(coords, n_neighbors=n_neighbors, radius=radius, path=st_path)
        cov = _covariates(st_data, covariates, path=st_path) if covariates else None
        tables.append(granger_test(x, neighbors, genes=genes, covariates=cov))
        info["granger"] = {"lag": f"mean over the {n_neighbors} nearest other spots" if radius is None else f"mean over other spots within {radius}",
                           "covariates": covariates, "restricted": "B ~ 1 + lag(B)" + (" + covariates" if covariates else ""),
                           "full": "restricted + lag(A)", "fdr": "Benjamini-Hochberg over all ordered pairs"}
    if needs_sc:
        if sc_data is None:
            raise InputError(sc_path, f"methods {', '.join(needs_sc)} need the scRNA-seq reference", "pass --sc, or --methods granger")
        missing = [g for g in genes if g not in set(map(str, sc_data.var_names))]
        if missing:
            raise InputError(sc_path, f"{len(missing)} panel genes are not in the reference (e.g. {', '.join(missing[:5])})",
                             "pass the normalized reference that goes with this ST file (the normalize step's output)")
        sc_panel = as_dense(sc_data[:, genes].X)
        flat = [g for g, sd in zip(genes, sc_panel.std(axis=0)) if sd == 0]
        if len(flat) > len(genes) - 3:
            raise InputError(sc_path, f"{len(flat)} of the {len(genes)} panel genes are constant in the reference", "use a reference that measures the panel genes")
        for method in needs_sc:
            if method == "linear_ridge":
                total, meta = ridge_total_effects(sc_panel, x)
            else:
                total, meta = knn_total_effects(sc_panel, x, delta=delta, seed=seed)
            w = direct_effects(total, ridge=ridge)
            tables.append(linearization_table(w, genes=genes, method=method))
            info[method] = {**meta, "perturbed": "measured ST map of one panel gene, +delta SD at every spot",
                            "inverse": f"Tikhonov, ridge {ridge} x mean squared singular value of T", "threshold": threshold}
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    table = table.sort_values(["method", "statistic"], ascending=[True, False], kind="stable").reset_index(drop=True)
    info["n_called"] = {m: int(n_called(table[table["method"] == m], threshold=threshold)) for m in methods}
    return CausalityResult(table=table, genes=genes, info=info)


def called(table: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = 0.05) -> pd.Series:
    """Which rows are called edges: q < ``alpha`` for tests, |effect| >= ``threshold`` for linearizations."""
    tested = table["q_value"].notna()
    return (tested & (table["q_value"] < alpha)) | (~tested & (table["effect"].abs() >= threshold))


def n_called(table: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD) -> int:
    return int(called(table, threshold=threshold).sum()) if len(table) else 0


def _covariates(st_data, key: str, *, path) -> np.ndarray:
    if key in st_data.obsm:
        return np.asarray(as_dense(st_data.obsm[key]) if not isinstance(st_data.obsm[key], pd.DataFrame) else st_data.obsm[key].to_numpy(float))
    columns = [c.strip() for c in key.split(",") if c.strip()]
    missing = [c for c in columns if c not in st_data.obs.columns]
    if missing:
        raise InputError(path, f"covariates {', '.join(missing)} are neither an obsm key nor obs columns", "name an obsm key (e.g. cell_type_fractions) or obs columns")
    return pd.get_dummies(st_data.obs[columns], drop_first=True, dtype=float).to_numpy(float)


# ----------------------------------------------------------------------------- figures and files


def heatmap_figure(table: pd.DataFrame, *, method: str = "granger", n_top: int = 15):
    """Source x target heatmap of the genes in the strongest pairs (-log10 q, or |effect|)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["method"] == method]
    top = rows.nlargest(n_top, "statistic")
    genes = list(dict.fromkeys([*top["source"], *top["target"]]))[:n_top]
    sub = rows[rows["source"].isin(genes) & rows["target"].isin(genes)]
    tested = sub["q_value"].notna().any()
    value = -np.log10(np.clip(sub["q_value"].to_numpy(float), 1e-300, 1)) if tested else sub["statistic"].to_numpy(float)
    grid = pd.DataFrame(np.nan, index=genes, columns=genes)
    for s, t, v in zip(sub["source"], sub["target"], value):
        grid.loc[s, t] = v
    fig, ax = plt.subplots(figsize=(1.2 + 0.38 * max(3, len(genes)), 1.0 + 0.38 * max(3, len(genes))))
    im = ax.imshow(grid.to_numpy(float), cmap="viridis")
    ax.set_xticks(range(len(genes)), genes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(genes)), genes, fontsize=7)
    ax.set_xlabel("target B")
    ax.set_ylabel("source A")
    ax.set_title(f"{method}: genes of the top {len(top)} pairs", fontsize=9)
    fig.colorbar(im, ax=ax, label="-log10 q" if tested else "|effect|", shrink=0.8)
    return fig


def network_figure(table: pd.DataFrame, *, method: str = "granger", n_edges: int = 20):
    """The strongest directed edges on a circle (arrow from source to target; red +, blue -)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = table[table["method"] == method].nlargest(n_edges, "statistic")
    genes = list(dict.fromkeys([*top["source"], *top["target"]]))
    angle = 2 * np.pi * np.arange(len(genes)) / max(1, len(genes))
    pos = {g: (np.cos(a), np.sin(a)) for g, a in zip(genes, angle)}
    fig, ax = plt.subplots(figsize=(6, 6))
    width = top["statistic"].to_numpy(float)
    width = 0.5 + 2.5 * width / width.max() if len(width) and width.max() > 0 else np.ones(len(top))
    for (s, t, e), lw in zip(top[["source", "target", "effect"]].itertuples(index=False), width):
        ax.annotate("", xy=pos[t], xytext=pos[s], arrowprops=dict(arrowstyle="-|>", color="tab:red" if e >= 0 else "tab:blue",
                                                                  lw=lw, alpha=0.7, shrinkA=12, shrinkB=12, connectionstyle="arc3,rad=0.1"))
    for g, (px, py) in pos.items():
        ax.text(px * 1.13, py * 1.13, g, ha="center", va="center", fontsize=7)
        ax.plot(px, py, "o", color="0.3", ms=5)
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{method}: {len(top)} strongest edges (red: positive effect, blue: negative)", fontsize=9)
    return fig


def describe(method: str) -> str:
    return {"granger": "F-test of lag(A) added to B ~ lag(B), BH q-values",
            "linear_ridge": "W = -T^-1 of the default method's kernel-ridge view",
            "knn_cells": "W = -T^-1 of the kNN-over-cells generator"}[method]


# ----------------------------------------------------------------------------- validation against a known network


def baseline_table(matrix: np.ndarray, *, genes: Sequence[str], kind: str, shrinkage: float = 0.05) -> pd.DataFrame:
    """Undirected baselines scored on both orientations of a pair: ``correlation`` (|Pearson|) or
    ``partial_correlation`` (|partial correlation| from the shrunk inverse covariance)."""
    x = zscore(as_dense(matrix))
    corr = (x.T @ x) / len(x)
    if kind == "correlation":
        score = corr
    elif kind == "partial_correlation":
        precision = np.linalg.inv((1 - shrinkage) * corr + shrinkage * np.eye(len(corr)))
        d = np.sqrt(np.diag(precision))
        score = -precision / np.outer(d, d)
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    a, b = np.where(~np.eye(len(genes), dtype=bool))
    return pd.DataFrame({"source": np.asarray(genes)[a], "target": np.asarray(genes)[b], "method": kind,
                         "statistic": np.abs(score[a, b]), "p_value": np.nan, "q_value": np.nan, "effect": score[a, b]})[COLUMNS]


def edge_metrics(table: pd.DataFrame, *, truth_source: Sequence[str], truth_target: Sequence[str],
                 threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Recovery of the directed edges among the table's genes: AUPRC of the ranking by
    ``statistic``, precision and recall of the called edges and at the top-K (K = true edges),
    and how often a true edge outscores its reverse."""
    from sklearn.metrics import average_precision_score

    genes = set(table["source"]) | set(table["target"])
    truth = {(s, t) for s, t in zip(map(str, truth_source), map(str, truth_target)) if s in genes and t in genes}
    pairs = list(zip(table["source"], table["target"]))
    y = np.array([p in truth for p in pairs])
    score = table["statistic"].to_numpy(float)
    out = {"n_genes": len(genes), "n_pairs": len(pairs), "n_true": int(y.sum()), "base_rate": float(y.mean()) if len(y) else np.nan}
    if not y.any():
        return {**out, "auprc": np.nan, "precision": np.nan, "recall": np.nan, "precision_at_k": np.nan, "direction": np.nan, "n_called": 0}
    call = called(table, threshold=threshold).to_numpy()
    top = np.argsort(-score, kind="stable")[: int(y.sum())]
    lookup = dict(zip(pairs, score))
    forward = [(lookup[(s, t)], lookup.get((t, s), -np.inf)) for s, t in truth]
    return {**out, "auprc": float(average_precision_score(y, score)), "n_called": int(call.sum()),
            "precision": float(y[call].mean()) if call.any() else np.nan, "recall": float(y[call].sum() / y.sum()),
            "precision_at_k": float(y[top].mean()), "direction": float(np.mean([f > r for f, r in forward]))}
