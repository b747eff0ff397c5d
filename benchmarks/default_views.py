"""Views tried beside the default and left out: what each would add. Writes docs/benchmarks-default-views.md.

Issue 15 asks the default for +0.02 PCC on osmFISH and MERFISH. Each candidate below is
scored on the same folds as the default (held-out protocol, normalized truth, 10 folds per
seed), so a row's difference from the default is paired gene by gene:

- ``gene-graph residual propagation`` (SPRITE's "reinforce" step): the out-of-fold errors of the
  training genes, from the default's own inner CV, carried to each held-out gene by its 10 most
  similar training genes in scRNA-seq, added with weight ``gamma`` (fixed grid; and ``gamma``
  chosen by inner CV, where a training gene only borrows the errors of genes in its own inner fold,
  whose fits never saw it);
- ``kernel ridge on smoothed cells``: the ridge view's gene features from each cell averaged over
  its 15 nearest cells (a denoised gene-gene similarity);
- third views, each blended with the default at the weight that is best ON THE TEST GENES (an
  upper bound of what the view could add, not a method), and scored alone:
  ``cell-as-sample ridge`` (training genes -> held-out gene fitted over reference cells, applied
  to the spots); ``gene similarity over mapped spots`` (kernel ridge over genes whose gene-gene
  similarity is taken over the default's kNN-mapped spot profiles instead of over cells);
  ``kNN ensemble`` (the mean of every kNN view of the grid instead of the chosen one); ``both
  ridge kernels`` (linear and RBF averaged); ``kNN on spatially smoothed spots`` (each spot's
  training-gene profile averaged with its 8 spatial neighbours before cells are matched); and
  ``SpaGE principal vectors`` (cells matched in the principal vectors shared by the two
  modalities' separate PCAs, SpaGE's alignment, instead of one joint PCA);
- ``per-gene blend weight``: the kNN share of the blend chosen for each held-out gene by ITS OWN
  test values (an upper bound of any rule that sets the weight per gene, e.g. from similar genes);
- ``scale maps``: how the default's pattern is placed on the ST scale (today: predicted mean and
  SD, clipped at 0): no clip (negative log values), a soft floor (softplus at half the SD), a
  shift that lifts each gene's minimum to 0, and the SD shrunk (by the gene's expected PCC, as a
  conditional mean's SD is PCC x the gene's SD; or halved), which clips fewer spots at 0.

Usage: python benchmarks/default_views.py [--data ../shared/data] [--seeds 0,1,2] [--output docs/benchmarks-default-views.md]
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA
from tqdm import tqdm

from causalged.research.benchmark import prepare
from causalged.evaluation.crossval import fold_inputs
from causalged.evaluation.metrics import js, pcc, ssim
from causalged.io import write_text_atomic
from causalged.methods import get_imputer
from causalged.arrays import as_dense, column_moments, zscore
from causalged.methods.blend import ALPHA_GRID, K_GRID, MAX_INNER_GENES, N_PCS_GRID
from causalged.methods.kernel_ridge import KernelRidgeImputer
from causalged.methods.knn import knn_weight_grid, neighbour_weights, top_cosine
from causalged.methods.spatial import neighbour_graph

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("osmfish_ssp_cortex", "merfish_hypothalamus_rctd")
GAMMAS = (0.1, 0.25, 0.5)
PROPAGATION_GENES = 10
SMOOTHING_CELLS = 15
CELL_RIDGE = 1000.0
SPATIAL_SMOOTHING_SPOTS = 8
PRINCIPAL_VECTORS = 30
#: SpaGE keeps the principal vectors whose source and target directions agree most; here the leading 60 %.
PRINCIPAL_VECTOR_SHARE = 0.6


def similarity_weights(sim: np.ndarray, k: int) -> np.ndarray:
    """Rows: weights over the k most similar columns (negative similarity counts 0), summing to 1."""
    out = np.zeros_like(sim)
    idx = np.argsort(-sim, axis=1)[:, :k]
    rows = np.arange(sim.shape[0])[:, None]
    out[rows, idx] = np.clip(sim[rows, idx], 0.0, None)
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def inner_fold_of(n_genes: int, seed: int, inner_folds: int = 5) -> np.ndarray:
    """The inner fold of each scored training gene, as the default's search draws them."""
    rng = np.random.default_rng(seed)
    scored = np.sort(rng.permutation(n_genes)[:MAX_INNER_GENES])
    fold_of = np.zeros(len(scored), dtype=int)
    for i, inner in enumerate(np.array_split(rng.permutation(scored), max(2, min(inner_folds, len(scored))))):
        fold_of[np.searchsorted(scored, inner)] = i
    return fold_of


def smoothing_operator(sc_matrix: np.ndarray, *, k: int, seed: int) -> sp.csr_matrix:
    """Cells x cells: each cell's mean over its k nearest cells (cosine in 30 PCs)."""
    pcs = PCA(min(30, sc_matrix.shape[1] - 1), random_state=seed).fit_transform(zscore(sc_matrix))
    _, idx = top_cosine(pcs, pcs, k=k)
    n = len(pcs)
    return sp.csr_matrix((np.full(idx.size, 1.0 / k), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))


def mapped_ridge_view(weights: sp.csr_matrix, sc_train: np.ndarray, sc_test: np.ndarray, st_train: np.ndarray) -> np.ndarray:
    """Kernel ridge over genes with the linear kernel taken over kNN-mapped spot profiles
    (``weights @ sc``) instead of over cells: the package's ridge, fitted from those correlations
    alone (its strength by leave-one-gene-out)."""
    mapped_train = zscore(np.asarray(weights @ sc_train)) / np.sqrt(weights.shape[0])  # spots x training genes, unit length
    mapped_test = zscore(np.asarray(weights @ sc_test)) / np.sqrt(weights.shape[0])
    moments = (None, None, *column_moments(st_train))  # no cells: the fit predicts from correlations only
    model = KernelRidgeImputer(kernel="linear").fit_arrays(None, st_train, corr=mapped_train.T @ mapped_train, moments=moments)
    return zscore(model.pattern_from_correlation(mapped_test.T @ mapped_train))


def principal_vector_knn_view(sc_train: np.ndarray, st_train: np.ndarray, sc_test: np.ndarray, *, k: int, seed: int) -> np.ndarray:
    """SpaGE-style: separate PCAs of the two modalities, aligned by their principal vectors (SVD
    of the product of the loadings); cells matched to spots by cosine in the leading shared directions."""
    a, b = zscore(sc_train), zscore(st_train)
    n = max(1, min(PRINCIPAL_VECTORS, a.shape[1] - 1))
    source = PCA(n, random_state=seed).fit(a).components_
    target = PCA(n, random_state=seed).fit(b).components_
    u, _, _ = np.linalg.svd(source @ target.T)
    directions = (u.T @ source)[: max(1, round(n * PRINCIPAL_VECTOR_SHARE))]
    sim, idx = top_cosine(b @ directions.T, a @ directions.T, k=k)
    rows = np.repeat(np.arange(len(b)), idx.shape[1])
    weights = sp.csr_matrix((neighbour_weights(sim).ravel(), (rows, idx.ravel())), shape=(len(b), len(a)))
    return zscore(np.asarray(weights @ sc_test))


def third_views(default, inputs: dict, sc_train: np.ndarray, sc_test: np.ndarray, *, seed: int) -> dict[str, np.ndarray]:
    """Z-scored candidate third views of the held-out genes (spots x genes), by label."""
    st_train, choice = inputs["st_train"], default.choice_
    xc = zscore(sc_train)
    coef = np.linalg.solve(xc.T @ xc + CELL_RIDGE * np.eye(xc.shape[1]), xc.T @ zscore(sc_test))
    grid = knn_weight_grid(sc_train, st_train, ks=K_GRID, n_pcs_grid=N_PCS_GRID, seed=seed)
    kernels = [zscore(KernelRidgeImputer(kernel=kernel).fit_arrays(sc_train, st_train)._pattern(sc_test)) for kernel in ("linear", "rbf")]
    views = {
        "cell-as-sample ridge": zscore(zscore(st_train) @ coef),
        "gene similarity over mapped spots": mapped_ridge_view(default.weights_, sc_train, sc_test, st_train),
        "kNN ensemble over the grid": zscore(sum(zscore(np.asarray(w @ sc_test)) for w in grid.values())),
        "both ridge kernels": zscore(sum(kernels)),
        "SpaGE principal vectors": principal_vector_knn_view(sc_train, st_train, sc_test, k=choice.k, seed=seed),
    }
    if inputs["st_coords"] is not None:
        graph = neighbour_graph(inputs["st_coords"], n_neighbours=SPATIAL_SMOOTHING_SPOTS)
        smoothed = 0.5 * st_train + 0.5 * np.asarray(graph @ st_train)
        weights = knn_weight_grid(sc_train, smoothed, ks=(choice.k,), n_pcs_grid=(choice.n_pcs,), seed=seed)[(choice.n_pcs, choice.k)]
        views["kNN on spatially smoothed spots"] = zscore(np.asarray(weights @ sc_test))
    return views


def fold_variants(inputs: dict, *, seed: int, smoother: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Every variant's prediction of the fold's held-out genes (spots x genes)."""
    sc_train, sc_test, st_train = as_dense(inputs["sc_train"]), as_dense(inputs["sc_heldout"]), inputs["st_train"]
    fit_args = dict(sc_target=sc_test, st_counts=inputs["st_counts_train"], st_coords=inputs["st_coords"])
    default = get_imputer("knn_ridge_blend", seed=seed).fit(sc_train, st_train, **fit_args)
    out = {"default": default.predict(sc_test)}
    pattern = zscore(default._pattern(sc_test))
    mean, sd = default.scale_.moments(sc_test)

    # gene-graph residual propagation (needs the inner CV at every spot)
    if len(default.oof_spots_) == st_train.shape[0]:
        scored = default.oof_genes_
        resid = zscore(st_train[:, scored]) - default.oof_pattern_
        correction = resid @ similarity_weights(default.ridge_model_.correlation(sc_test)[:, scored], PROPAGATION_GENES).T
        within = default.ridge_model_.corr_[np.ix_(scored, scored)].copy()
        np.fill_diagonal(within, -np.inf)
        fold_of = inner_fold_of(sc_train.shape[1], seed)
        inner_weights = similarity_weights(np.where(fold_of[:, None] == fold_of[None, :], within, -np.inf), PROPAGATION_GENES)
        inner_truth = zscore(st_train[:, scored])
        inner_score = {g: np.nanmean(pcc(default.oof_pattern_ + g * (resid @ inner_weights.T), inner_truth)) for g in (0.0, *GAMMAS)}
        chosen = max(inner_score, key=inner_score.get)
        for g in GAMMAS:
            out[f"propagation gamma {g}"] = default.scale_.to_st(pattern + g * correction, sc_test)
        out["propagation, gamma by inner CV"] = default.scale_.to_st(pattern + chosen * correction, sc_test)

    # kernel ridge on smoothed cells, beside the plain one
    for label, op in (("kernel_ridge_rbf", None), ("kernel_ridge_rbf on smoothed cells", smoother)):
        tr, te = (sc_train, sc_test) if op is None else (np.asarray(op @ sc_train), np.asarray(op @ sc_test))
        out[label] = get_imputer("kernel_ridge_rbf").fit(tr, st_train, **{**fit_args, "sc_target": te}).predict(te)

    # third views (their blend weights are chosen later, on the test genes)
    out.update({f"_view:{label}": view for label, view in third_views(default, inputs, sc_train, sc_test, seed=seed).items()})
    out["_pattern"], out["_mean"], out["_sd"] = pattern, mean[None, :], sd[None, :]
    knn, ridge = zscore(np.asarray(default.weights_ @ sc_test)), zscore(default.ridge_model_._pattern(sc_test))
    out["_alpha_grid"] = np.stack([default._combine(knn, ridge, replace(default.choice_, alpha=float(a))) for a in ALPHA_GRID])

    # scale maps of the default's pattern
    linear = pattern * sd + mean
    out["scale: no clip (negative values)"] = linear
    out["scale: soft floor (softplus, half the SD)"] = 0.5 * sd * np.logaddexp(0.0, linear / (0.5 * sd))
    out["scale: shift each gene's minimum to 0"] = linear - np.minimum(linear.min(axis=0), 0.0)
    expected = np.clip(default.expected_pcc(sc_test), 0.05, 1.0)  # a conditional mean's SD is PCC x the gene's SD
    out["scale: SD shrunk by the expected PCC"] = np.clip(pattern * sd * expected + mean, 0.0, None)
    out["scale: SD halved"] = np.clip(pattern * sd * 0.5 + mean, 0.0, None)
    return out


def run_dataset(folder: Path, seeds: list[int]) -> tuple[pd.DataFrame, dict]:
    rows, meta = [], {}
    for seed in seeds:
        name, sc_data, st_data, split = prepare(str(folder), seed=seed, n_folds=10)
        smoother = smoothing_operator(as_dense(sc_data.X), k=SMOOTHING_CELLS, seed=seed)
        preds: dict[str, list] = {}
        truths = []
        for fold in tqdm(range(split["n_folds"]), desc=f"{name} seed {seed}", unit="fold"):
            inputs = fold_inputs(sc_data, st_data, split, fold)
            for key, value in fold_variants(inputs, seed=seed, smoother=smoother).items():
                preds.setdefault(key, []).append(value)
            truths.append(inputs["truth"])
        truth = np.concatenate(truths, axis=1)
        alpha_grid = np.concatenate(preds.pop("_alpha_grid"), axis=2)  # alphas x spots x genes
        stacked = {k: np.concatenate(v, axis=1) for k, v in preds.items()}
        pattern, mean, sd = (stacked.pop(k) for k in ("_pattern", "_mean", "_sd"))
        views = {key.removeprefix("_view:"): stacked.pop(key) for key in list(stacked) if key.startswith("_view:")}

        def on_st_scale(z):  # as the default places its pattern (ScaleMap.to_st)
            return np.clip(zscore(z) * sd + mean, 0.0, None)

        for label, view in views.items():
            best = max(((np.nanmean(pcc(on_st_scale((1 - w) * pattern + w * view), truth)), w) for w in np.linspace(0, 1, 11)))
            stacked[f"{label} alone"] = on_st_scale(view)
            stacked[f"default + {label}, weight {best[1]:.1f} (best on TEST genes: upper bound)"] = on_st_scale((1 - best[1]) * pattern + best[1] * view)
        per_gene = np.nan_to_num(np.stack([pcc(on_st_scale(view), truth) for view in alpha_grid]), nan=-np.inf).argmax(axis=0)
        stacked["per-gene blend weight, best per TEST gene (upper bound)"] = on_st_scale(alpha_grid[per_gene, :, np.arange(truth.shape[1])].T)
        base, base_ssim = pcc(stacked["default"], truth), ssim(stacked["default"], truth)
        for key, value in stacked.items():
            score, structure = pcc(value, truth), ssim(value, truth)
            rows.append({"dataset": name, "seed": seed, "variant": key, "pcc": np.nanmean(score), "ssim": np.nanmean(structure),
                         "js": np.nanmean(js(value, truth)), "diff": np.nanmean(score - base), "ssim_diff": np.nanmean(structure - base_ssim),
                         "negative": float((value < 0).mean())})
        meta[name] = {"genes": truth.shape[1], "spots": truth.shape[0], "cells": sc_data.n_obs}
    return pd.DataFrame(rows), meta


def _diff(values: pd.Series) -> str:
    """Mean difference over seeds, with its SD over seeds."""
    return f"{values.mean():+.4f} ({values.std(ddof=1) if len(values) > 1 else float('nan'):.4f})"


def render(table: pd.DataFrame, meta: dict, *, seeds: list[int], seconds: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    lines = ["# Views tried beside the default (issue 15)", "",
             f"Written by `python benchmarks/default_views.py --seeds {','.join(map(str, seeds))}` (commit `{commit}`, "
             f"{dt.datetime.now():%Y-%m-%d %H:%M}, {seconds / 60:.1f} min on this machine).", "",
             "**Protocol: held-out genes** (10 folds over the shared genes per seed, test genes absent from the ST input, "
             "normalized truth), the same folds and the same fitted default for every row. `difference` is the mean over genes "
             "of the per-gene PCC difference from the default, then the mean over seeds, with its SD over seeds. "
             "`negative` is the share of predicted entries below 0 (a log-normalized value cannot be).", ""]
    for name, group in table.groupby("dataset", sort=False):
        m = meta[name]
        lines += [f"## {name}", "", f"{m['genes']} shared genes, {m['spots']} spots, {m['cells']} cells after QC.", "",
                  "| variant | PCC | SSIM | JS | difference in PCC (SD over seeds) | difference in SSIM (SD over seeds) | negative |",
                  "|---|---|---|---|---|---|---|"]
        group = group.assign(variant=group.variant.str.replace(r"weight \d\.\d", "weight w", regex=True))
        for variant, rows in group.groupby("variant", sort=False):
            lines.append(f"| {variant} | {rows.pcc.mean():.3f} | {rows.ssim.mean():.3f} | {rows.js.mean():.3f} | {_diff(rows['diff'])} | "
                         f"{_diff(rows['ssim_diff'])} | {rows.negative.mean():.2f} |")
        lines.append("")
    lines += ["## Reading", "",
              "A variant would enter the default only if it added PCC on both design datasets beyond the seed spread, "
              "without lowering SSIM beyond it and without writing invalid (negative) values. The issue's target "
              "(+0.02 PCC over 0.349 / 0.344) stays a miss where no row reaches it; the `scale` rows change how every "
              "method's pattern is placed on the ST scale, not the default's views. A shrunk SD clips fewer spots at 0, which "
              "is where its PCC gain on MERFISH comes from; it costs more SSIM than it adds PCC, so the default keeps the "
              "gene's SD. The per-gene upper bound (each held-out gene's blend weight set by its own test values) bounds "
              "what any per-gene rule over the two views could add. The `default + ...` rows bound what a third view of "
              "each family could add at any single blend weight, since the weight is read off the test genes: a bound "
              "near +0.000 means the default's two views already carry what that family sees.", ""]
    return "\n".join(lines)


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=REPO.parent / "shared" / "data", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=REPO / "docs" / "benchmarks-default-views.md", show_default=True)
def main(data: Path, seeds: str, output: Path) -> None:
    start = time.perf_counter()
    seed_list = [int(s) for s in seeds.split(",")]
    tables, meta = [], {}
    for name in DATASETS:
        table, info = run_dataset(data / name, seed_list)
        tables.append(table)
        meta.update(info)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(output.with_suffix(".csv"), index=False)
    write_text_atomic(render(table, meta, seeds=seed_list, seconds=time.perf_counter() - start), output)
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
