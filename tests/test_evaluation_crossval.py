"""Held-out-gene cross-validation: folds, the no-leak guarantee, the paper protocol, the CLI."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from causalged.cli import cli
crossval, evaluate = cli.commands["crossval"], cli.commands["evaluate"]
from causalged.evaluation.crossval import combine_folds, paper_inpainting, run_fold
from causalged.evaluation.metrics import score_genes
from causalged.preprocess import load_split, make_gene_splits

QUICK = ["knn", "kernel_ridge", "spot_depth", "knn_ridge_blend"]


@pytest.fixture(scope="module")
def tiny(tiny_preprocessed):
    return {
        "paths": tiny_preprocessed,
        "sc": ad.read_h5ad(tiny_preprocessed["sc"]),
        "st": ad.read_h5ad(tiny_preprocessed["st"]),
        "split": load_split(tiny_preprocessed["split"]),
    }


def test_folds_disjoint_and_cover_every_shared_gene_once(tiny):
    split = tiny["split"]
    genes = [g for fold in split["folds"] for g in fold]
    assert sorted(genes) == sorted(split["shared_genes"])
    assert len(genes) == len(set(genes))
    for k in (2, 7, 40):
        other = make_gene_splits(split["shared_genes"], seed=3, n_folds=k)
        flat = [g for fold in other["folds"] for g in fold]
        assert sorted(flat) == sorted(split["shared_genes"]) and len(flat) == len(set(flat))


def test_heldout_values_never_reach_the_methods(tiny):
    """Replacing the held-out genes' ST values (normalized and raw) with NaN or noise changes nothing."""
    sc_data, st_data, split = tiny["sc"], tiny["st"], tiny["split"]
    heldout = split["folds"][1]
    clean = run_fold(sc_data, st_data, split, 1, methods=QUICK, n_samples=2)
    cols = st_data.var_names.get_indexer(heldout)
    rng = np.random.default_rng(0)
    for poison in (np.nan, "noise"):
        bad = st_data.copy()
        x, counts = np.asarray(bad.X.todense() if hasattr(bad.X, "todense") else bad.X, dtype=np.float32), np.asarray(
            bad.layers["counts"].todense() if hasattr(bad.layers["counts"], "todense") else bad.layers["counts"], dtype=np.float32)
        fill = rng.uniform(0, 50, (bad.n_obs, len(cols))) if poison == "noise" else np.full((bad.n_obs, len(cols)), np.nan)
        x[:, cols], counts[:, cols] = fill, fill
        bad.X, bad.layers["counts"] = x, counts
        dirty = run_fold(sc_data, bad, split, 1, methods=QUICK, n_samples=2)
        for name in QUICK + ["knn_ridge_blend_q05", "knn_ridge_blend_q95"]:
            np.testing.assert_array_equal(clean.layers[name], dirty.layers[name], err_msg=f"{name} changed when held-out ST values were {poison}")
        # the default's inner choices (views, weights, spatial view) are made without the held-out genes too
        chosen = clean.uns["causalged_crossval"]["method_info"]["knn_ridge_blend"]
        assert chosen["spatial_view"] != "no spatial coordinates"
        assert dirty.uns["causalged_crossval"]["method_info"]["knn_ridge_blend"] == chosen


def test_combined_folds_hold_each_gene_once_with_truth(tiny):
    sc_data, st_data, split = tiny["sc"], tiny["st"], tiny["split"]
    folds = [run_fold(sc_data, st_data, split, k, methods=["knn", "spot_depth"], n_samples=0) for k in range(split["n_folds"])]
    combined = combine_folds(folds)
    assert sorted(combined.var_names) == sorted(split["shared_genes"])
    np.testing.assert_allclose(combined.X, np.asarray(st_data[:, combined.var_names].X.todense() if hasattr(st_data.X, "todense") else st_data[:, combined.var_names].X), rtol=1e-6)
    assert combined.uns["default_method"] == "knn_ridge_blend"


def test_paper_inpainting_writes_truth_back():
    rng = np.random.default_rng(0)
    truth = rng.poisson(1.0, (200, 3)).astype(float)
    pred = np.full_like(truth, -1.0)
    out = paper_inpainting(pred, truth, rng=np.random.default_rng(1))
    for g in range(3):
        nz = truth[:, g] != 0
        assert np.all(out[~nz, g] == truth[~nz, g])  # every zero written back
        hidden = out[:, g] == -1.0
        assert hidden.sum() == round(0.3 * nz.sum()) and np.all(nz[hidden])


def test_baselines_beat_a_random_predictor_on_demo_data():
    from causalged import preprocess
    from causalged.simulate import simulate

    sc_raw, st_raw, _ = simulate(size="demo", seed=0)
    sc_qc, st_qc, _ = preprocess.qc(sc_raw, st_raw)
    sc_data, st_data, _ = preprocess.select_hvg(preprocess.normalize(sc_qc), preprocess.normalize(st_qc))
    split = preprocess.make_gene_splits(list(st_data.var_names), seed=0, n_folds=5)
    result = run_fold(sc_data, st_data, split, 0, methods=["knn", "kernel_ridge", "knn_ridge_blend"], n_samples=0)
    truth = np.asarray(result.X)
    rng = np.random.default_rng(0)
    random_pcc = max(np.nanmean(score_genes(rng.random(truth.shape), truth).pcc) for _ in range(20))  # best of 20 random predictors
    for name in ("knn", "kernel_ridge", "knn_ridge_blend"):
        pcc = np.nanmean(score_genes(result.layers[name], truth).pcc)
        assert pcc > random_pcc + 0.03, f"{name}: PCC {pcc:.3f} vs best random {random_pcc:.3f}"


def test_cli_crossval_then_evaluate(tiny, tmp_path):
    p = tiny["paths"]
    common = ["--sample", "tiny", "--sc", str(p["sc"]), "--st", str(p["st"]), "--split", str(p["split"]), "--methods", "knn,kernel_ridge,spot_depth", "--n-samples", "0"]
    runner = CliRunner()
    files = []
    for fold in range(tiny["split"]["n_folds"]):
        res = runner.invoke(crossval, [*common, "--fold", str(fold), "--outdir", str(tmp_path / "folds")], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        files.append(tmp_path / "folds" / f"tiny.fold{fold}.predictions.h5ad")
    res = runner.invoke(evaluate, [*common, "--outdir", str(tmp_path / "ev"), "--protocol", "paper-inpainting", "--no-figures",
                                   *map(str, files)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    metrics = pd.read_csv(tmp_path / "ev" / "tiny.metrics.csv")
    assert set(metrics.protocol) == {"heldout", "paper-inpainting"}
    assert "noise_control" in set(metrics[metrics.protocol == "paper-inpainting"].method)
    assert set(metrics.truth) == {"normalized", "raw_counts"}
    assert len(metrics[(metrics.protocol == "heldout") & (metrics.truth == "normalized")]) == 3 * len(tiny["split"]["shared_genes"])
    pred = ad.read_h5ad(tmp_path / "ev" / "tiny.heldout_predictions.h5ad")
    assert {"knn", "kernel_ridge", "spot_depth"} <= set(pred.layers) and pred.uns["default_method"] == "knn_ridge_blend"
    assert "paper-inpainting" in (tmp_path / "ev" / "tiny.metrics_mqc.tsv").read_text()
    trust = pd.read_csv(tmp_path / "ev" / "tiny.gene_trust.csv")
    assert set(trust.kind) == {"panel", "target"} and trust.expected_pcc.notna().all()


def test_cli_evaluate_runs_folds_itself_with_figures(tiny, tmp_path):
    p = tiny["paths"]
    res = CliRunner().invoke(evaluate, ["--sample", "tiny", "--sc", str(p["sc"]), "--st", str(p["st"]), "--split", str(p["split"]),
                                        "--methods", "knn,knn_ridge_blend", "--n-samples", "2", "--outdir", str(tmp_path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for name in ("metrics_boxplot", "spatial_maps", "umap", "gene_distance"):
        assert (tmp_path / "figures" / f"tiny.{name}.png").stat().st_size > 1000
        section = (tmp_path / "figures" / f"tiny.{name}_mqc.html").read_text()
        assert section.startswith("<!--\nid: 'causalged_fig") and "data:image/png;base64," in section
    trust = pd.read_csv(tmp_path / "tiny.gene_trust.csv")
    assert set(trust.method) == {"knn", "knn_ridge_blend"}  # trust for every evaluated method
    assert trust.loc[(trust.kind == "panel") & (trust.method == "knn_ridge_blend"), "coverage_90"].between(0, 1).all()
    assert trust.loc[trust.method == "knn", "coverage_90"].isna().all()  # no samples, no interval
    choices = pd.read_csv(tmp_path / "tiny.default_choices_mqc.tsv", sep="\t", comment="#")
    assert list(choices.Sample) == [f"tiny | fold {k}" for k in range(tiny["split"]["n_folds"])]
    assert choices.ridge_kernel.isin(["linear", "rbf"]).all() and choices.alpha.between(0, 1).all()
    assert (choices.inner_pcc_chosen >= choices[["inner_pcc_knn", "inner_pcc_ridge", "inner_pcc_blend"]].max(axis=1) - 1e-9).all()


def test_bad_fold_is_a_clear_input_error(tiny, tmp_path):
    p = tiny["paths"]
    res = CliRunner().invoke(crossval, ["--sample", "tiny", "--sc", str(p["sc"]), "--st", str(p["st"]), "--split", str(p["split"]), "--fold", "99", "--outdir", str(tmp_path)])
    assert res.exit_code != 0 and "fold 99 does not exist" in str(res.exception)
    assert json.loads(p["split"].read_text())["n_folds"] == tiny["split"]["n_folds"]
