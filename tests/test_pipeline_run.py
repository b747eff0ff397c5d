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
    for section in ("causalged_qc", "causalged_hvg", "causalged_metrics", "causalged_trust", "causalged_runtime", "causalged_simulated_truth",
                    "causalged_fig2_spatial_maps_tiny", "causalged_fig4_target_maps_tiny"):
        assert section in html, section
    assert "data:image/png;base64" in html  # figures embedded


def test_imputed_genes_are_scored_against_the_simulated_truth(run_dir):
    imputed = ad.read_h5ad(run_dir / "tiny" / "impute" / "tiny.imputed.h5ad")
    reached = imputed.var["simulated_truth_pcc"]
    assert reached.notna().all() and reached.between(-1, 1).all()
    summary = imputed.uns["causalged"]["simulated_truth"]
    assert summary["n_genes"] == imputed.n_vars and np.isclose(summary["mean_pcc"], reached.mean())
    table = (run_dir / "tiny" / "impute" / "tiny.simulated_truth_mqc.tsv").read_text()
    assert "Simulated truth" in table and table.count("tiny | ") == imputed.n_vars


def _chromium() -> str | None:
    import os
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CAUSALGED_REQUIRE_CHROMIUM"):
        pytest.fail("chromium is required here (CAUSALGED_REQUIRE_CHROMIUM is set) but not installed")
    return found


def test_report_renders_in_a_browser_with_the_new_sections(run_dir, tmp_path):
    """Headless Chromium, as a user opens it: the DOM after MultiQC's scripts ran, and a screenshot."""
    import re
    import subprocess

    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = (run_dir / "multiqc" / "multiqc_report.html").resolve().as_uri()
    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
    dom = subprocess.run([*browser, "--dump-dom", report], capture_output=True, text=True, timeout=180).stdout
    for heading in ("General Statistics", "Held-out PCC", "Imputation accuracy (cross-validation)", "Imputed genes: tiny",
                    "Spatial maps: held-out panel genes: tiny", "Imputed genes against the simulated truth", "in the pipeline"):
        assert heading in dom, heading
    assert not re.search(r">\s*tiny uma\s*<", dom)  # figure sections are named, not titled from file names
    pcc = re.findall(r'class="data-coloured pcc[^"]*"><div class="wrapper">.*?<span class="val">([^<]+)</span>', dom)
    assert pcc and all(re.fullmatch(r"-?\d\.\d{3}", value) for value in pcc), pcc  # three decimals in every accuracy cell
    png = tmp_path / "report.png"
    subprocess.run([*browser, "--window-size=1400,6000", f"--screenshot={png}", report], capture_output=True, timeout=180)
    assert png.stat().st_size > 50_000


def test_run_needs_exactly_one_input(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and "exactly one of --input" in result.output


# ----------------------------------------------------------------------------- diffusion sampling options

SAMPLING = {"sampler": "ddpm", "sampling_steps": 20, "inference_mode": "autoregressive"}


def _option_pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(zip(args, args[1:]))


@pytest.mark.parametrize("step", ["crossval", "evaluate", "impute"])
def test_every_step_that_samples_takes_the_sampling_options(step):
    """impute's --sampler/--sampling-steps/--inference-mode are on every command that samples a diffusion model, old spellings kept."""
    result = CliRunner().invoke(cli, [step, "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--sampler [ddim|ddpm]", "--sampling-steps, --steps INTEGER", "--inference-mode, --mode [one_group|autoregressive]"):
        assert option in result.output, f"`causalged {step}` lost {option.split()[0]}"


def test_model_overrides_carry_the_sampling_to_every_diffusion_method():
    from causalged.steps.crossval import model_overrides
    from causalged.methods import MODEL_METHODS

    overrides = model_overrides(3, "ddpm", 0, "autoregressive")
    assert set(overrides) == set(MODEL_METHODS)
    for method, settings in overrides.items():
        mode = "one_group" if method == "causalged_nomask" else "autoregressive"  # no causal mask, no group-by-group sampling
        assert settings == {"sampler": "ddpm", "steps": None, "mode": mode, "epochs": 3}, method
    assert model_overrides(None)["causalged"] == {"sampler": "ddim", "steps": 50, "mode": None}  # what benchmark gets


def test_imputers_receive_the_overrides():
    """The cross-validation route builds each diffusion imputer with the sampling asked for (mode None: its own)."""
    from causalged.steps.crossval import model_overrides
    from causalged.evaluation.crossval import method_params
    from causalged.methods import MODEL_METHODS, get_imputer

    for mode in (None, "autoregressive"):
        overrides = model_overrides(None, "ddpm", 20, mode)
        for method in MODEL_METHODS:
            params = get_imputer(method, **method_params(method, seed=0, overrides=overrides)).params
            assert (params["sampler"], params["steps"]) == ("ddpm", 20), method
            own = get_imputer(method).params["mode"]
            assert params["mode"] == (own if mode is None or method == "causalged_nomask" else mode), method


def test_run_passes_the_sampling_to_crossval_and_impute(tmp_path):
    from causalged.params import command_line
    from causalged.pipeline import run_values, sample_tasks
    from causalged.samplesheet import Sample

    sample = Sample(id="s", sc=tmp_path / "sc.h5ad", st=tmp_path / "st.h5ad")
    tasks = {t.name: command_line(t.step, t.kwargs) for t in sample_tasks(sample, tmp_path, run_values(**SAMPLING), n_folds=2)}
    expected = {("--sampler", "ddpm"), ("--sampling-steps", "20"), ("--inference-mode", "autoregressive")}
    for name in ("crossval fold 0", "crossval fold 1", "impute"):
        assert expected <= _option_pairs(tasks[name]), name
    default = {t.name: command_line(t.step, t.kwargs) for t in sample_tasks(sample, tmp_path, run_values(), n_folds=2)}
    assert "--inference-mode" not in default["impute"]  # each method samples in its own mode


def test_run_command_line_reaches_run_params(tmp_path, monkeypatch):
    """`causalged run` takes the old spellings (--steps, --mode) as aliases of the table's names."""
    import causalged.pipeline

    seen = {}
    monkeypatch.setattr(causalged.pipeline, "run_pipeline", lambda values, cpus=None: seen.setdefault("values", values))
    sheet = tmp_path / "sheet.csv"
    sheet.touch()
    args = ["run", "--input", str(sheet), "--outdir", str(tmp_path), "--sampler", "ddpm", "--steps", "20", "--mode", "autoregressive"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert {k: seen["values"][k] for k in SAMPLING} == SAMPLING
