"""`causalged run --workers N`: the folds of the cross-validation as separate processes give the
files one process gives, keep the resume record, and a fold's error still arrives as one line."""

from __future__ import annotations

import json
import pickle
import shutil

import anndata as ad
import numpy as np
from click.testing import CliRunner

from causalged.cli import cli
from causalged.errors import InputError

FAST = ["--n-folds", "3", "--method", "knn", "--eval-methods", "knn,spot_depth"]


def _run(tiny_paths, outdir, *extra):
    sheet = outdir.parent / f"{outdir.name}.csv"
    sheet.write_text(f"sample,sc,st,genes\ntiny,{tiny_paths['sc']},{tiny_paths['st']},{tiny_paths['genes']}\n")
    result = CliRunner().invoke(cli, ["--cpus", "2", "run", "--input", str(sheet), "--outdir", str(outdir),
                                      *FAST, *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _restore_thread_variables(monkeypatch):
    """`--cpus` sets these for the whole process: put them back after the test."""
    import os

    from causalged.threads import THREAD_VARIABLES

    for variable in ("CAUSALGED_CPUS", *THREAD_VARIABLES):
        monkeypatch.setenv(variable, os.environ.get(variable, "1"))


def test_parallel_folds_match_one_process_and_resume(tiny_paths, tmp_path, monkeypatch):
    _restore_thread_variables(monkeypatch)
    _run(tiny_paths, tmp_path / "one", "--workers", "1")
    _run(tiny_paths, tmp_path / "two", "--workers", "2")
    for fold in range(3):
        name = f"tiny.fold{fold}.predictions.h5ad"
        a, b = ad.read_h5ad(tmp_path / "one" / "tiny" / "crossval" / name), ad.read_h5ad(tmp_path / "two" / "tiny" / "crossval" / name)
        for layer in ("knn", "spot_depth"):
            np.testing.assert_array_equal(a.layers[layer], b.layers[layer])
    record = json.loads((tmp_path / "two" / "pipeline_info" / "resume.json").read_text())
    for fold in range(3):
        entry = record[f"tiny/crossval fold {fold}"]
        assert entry["finished"] == entry["started"] and any(f"fold{fold}.predictions" in p for p in entry["outputs"])
    again = json.loads((tmp_path / "two" / "pipeline_info" / "execution_trace.json").read_text())["trace"]
    assert [t["step"] for t in again if t["step"].startswith("crossval")] == ["crossval fold 0", "crossval fold 1", "crossval fold 2"]
    (tmp_path / "two" / "tiny" / "crossval" / "tiny.fold1.predictions.h5ad").unlink()
    _run(tiny_paths, tmp_path / "two", "--workers", "2")  # unchanged folds skipped; the one whose file went missing runs again
    trace = json.loads((tmp_path / "two" / "pipeline_info" / "execution_trace.json").read_text())["trace"]
    assert {t["step"]: t["skipped"] for t in trace if t["step"].startswith("crossval")} == {
        "crossval fold 0": True, "crossval fold 1": False, "crossval fold 2": True}
    shutil.rmtree(tmp_path / "one")


def test_input_errors_survive_the_trip_from_a_worker():
    err = pickle.loads(pickle.dumps(InputError("a.h5ad", "too big", "use less")))
    assert isinstance(err, InputError) and (err.path, err.problem, err.fix) == ("a.h5ad", "too big", "use less")
    assert str(err) == "a.h5ad: too big. Fix: use less"


def test_threads_follow_the_cpus(monkeypatch):
    import os

    from causalged.threads import available_cpus, set_threads

    _restore_thread_variables(monkeypatch)
    monkeypatch.setenv("CAUSALGED_CPUS", "3")
    assert available_cpus() == 3
    monkeypatch.delenv("CAUSALGED_CPUS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert available_cpus() == 2
    import torch

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1 and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)
