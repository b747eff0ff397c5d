"""End to end: `causalged run` on the committed tiny data writes the Nextflow layout and a MultiQC report."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from causalged.cli import cli

STEPS = ("qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, repo):
    import os

    out = tmp_path_factory.mktemp("run")
    cwd = os.getcwd()
    os.chdir(repo)  # the test samplesheet's paths are relative to the repository root
    try:
        result = CliRunner().invoke(cli, ["run", "--input", "tests/data/samplesheet_test.csv", "--outdir", str(out), "--n-folds", "3",
                                          "--eval-methods", "knn_ridge_blend,knn,kernel_ridge,spot_depth"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_output_tree(run_dir):
    for step in STEPS:
        assert any((run_dir / "tiny" / step).iterdir()), step
    params = json.loads((run_dir / "pipeline_info" / "params.json").read_text())
    assert params["seed"] == 0 and params["n_folds"] == 3 and params["method"] == "knn_ridge_blend"
    folds = sorted((run_dir / "tiny" / "crossval").glob("tiny.fold*.predictions.h5ad"))
    assert len(folds) == 3


def test_imputed_targets(run_dir, tiny_paths):
    imputed = ad.read_h5ad(run_dir / "tiny" / "impute" / "tiny.imputed.h5ad")
    split = json.loads((run_dir / "tiny" / "hvg" / "tiny.split.json").read_text())
    assert list(imputed.var_names) == split["target_genes"]
    requested = tiny_paths["genes"].read_text().split()
    assert set(requested) <= set(imputed.var_names)
    st = ad.read_h5ad(tiny_paths["st"])
    assert imputed.n_obs == st.n_obs and "spatial" in imputed.obsm
    assert np.isfinite(imputed.X).all() and imputed.layers["std"].min() >= 0
    assert np.isfinite(imputed.var["expected_pcc"]).all()  # trust from the evaluation branch
    assert imputed.uns["causalged"]["impute"]["method"] == "knn_ridge_blend"


def test_metrics_name_their_protocol(run_dir):
    metrics = pd.read_csv(run_dir / "tiny" / "evaluate" / "tiny.metrics.csv")
    assert {"gene", "method", "protocol"} <= set(metrics.columns)
    assert set(metrics["method"]) >= {"knn_ridge_blend", "knn", "kernel_ridge", "spot_depth"}
    assert metrics["protocol"].str.contains("heldout").all()


def test_multiqc_report_has_the_sections(run_dir):
    html = (run_dir / "multiqc" / "multiqc_report.html").read_text()
    for section in ("causalged_qc", "causalged_hvg", "causalged_metrics", "causalged_trust", "causalged_runtime"):
        assert section in html, section
    assert "data:image/png;base64" in html  # figures embedded


def test_run_needs_exactly_one_input(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and "exactly one of --input" in result.output
