"""`causalged benchmark` on a tiny dataset folder: the page is written and labels its protocol."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from causalged.evaluation.cli import benchmark


def test_benchmark_writes_a_labelled_page(tiny_paths, tmp_path):
    folder = tmp_path / "osmfish_like"
    folder.mkdir()
    shutil.copy(tiny_paths["sc"], folder / "sc.h5ad")
    shutil.copy(tiny_paths["st"], folder / "st.h5ad")
    out = tmp_path / "benchmarks.md"
    res = CliRunner().invoke(benchmark, [str(folder), "--output", str(out), "--methods", "knn_ridge_blend,knn,kernel_ridge,spot_depth",
                                         "--seeds", "0,1", "--n-folds", "3", "--n-samples", "2"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "causalged benchmark" in text and "--seeds 0,1" in text
    assert "design was chosen on these datasets" in text
    assert "| **knn_ridge_blend** (default) | 2 |" in text
    assert "published" in text and "0.331" in text  # osmFISH-like name: published raw-count rows beside ours
    assert "MISSED" in text or "met" in text
