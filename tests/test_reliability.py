"""Reliability: each case of issue 14 (bad input, faults, kills, stale state) gets one clear line or a warning.

docs/usage.md#reliability lists these cases with the message each gets. Everything runs on the
committed tiny data; the single end-to-end fixture kills a real `causalged run` and resumes it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from causalged.cli import cli
from causalged.errors import InputError

FAST = ["--n-folds", "3", "--method", "knn", "--eval-methods", "knn,spot_depth"]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit 2, exactly one `Error:` line holding every fragment, no traceback."""
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def tiny_copy(folder: Path, tiny_paths, *, sc=None, st=None) -> Path:
    """Copies of the tiny pair (changed in place by ``sc``/``st``) and a samplesheet naming them; returns the sheet."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, change in (("sc", sc), ("st", st)):
        data = ad.read_h5ad(tiny_paths[role])
        if change is not None:
            data = change(data) or data
        data.write_h5ad(folder / f"{role}.h5ad")
    shutil.copy(tiny_paths["genes"], folder / "genes.txt")
    sheet = folder / "samplesheet.csv"
    sheet.write_text(f"sample,sc,st,genes\ntiny,{folder / 'sc.h5ad'},{folder / 'st.h5ad'},{folder / 'genes.txt'}\n")
    return sheet


def checksums(folder: Path) -> dict[str, str]:
    from causalged.io import file_digest

    return {str(p): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- 1. inputs are never rewritten
def test_validate_samplesheet_refuses_to_overwrite_its_input(tmp_path, tiny_paths):
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    before = sheet.read_bytes()
    result = invoke("validate-samplesheet", "--input", sheet, "--output", sheet)
    assert_one_line_error(result, str(sheet), "would overwrite an input file")
    assert sheet.read_bytes() == before


def test_run_refuses_inputs_inside_its_output_folders_and_writes_nothing(tmp_path, tiny_paths):
    out = tmp_path / "out"
    sheet = tiny_copy(out / "tiny" / "data", tiny_paths)  # the data sits inside <outdir>/<sample>/
    before = checksums(out)
    result = invoke("run", "--input", sheet, "--outdir", out, *FAST)
    assert_one_line_error(result, "lies inside", "a folder `causalged run` writes and cleans", "choose another --outdir")
    assert checksums(out) == before and not (out / "pipeline_info").exists()


def test_simulate_never_overwrites_a_users_files(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "samplesheet.csv").write_text("sample,sc,st\nmine,a.h5ad,b.h5ad\n")
    result = invoke("simulate", "--size", "tiny", "--outdir", folder)
    assert_one_line_error(result, "samplesheet.csv", "was not written by `causalged simulate`")
    assert (folder / "samplesheet.csv").read_text().startswith("sample,sc,st\nmine")
    fresh = tmp_path / "fresh"
    for _ in range(2):  # an earlier simulation's own files may be replaced
        assert invoke("simulate", "--size", "tiny", "--outdir", fresh).exit_code == 0


# ----------------------------------------------------------------------------- 2-3. one error path through `run`
def test_run_reports_a_step_error_as_the_step_does(tmp_path, tiny_paths):
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    through_run = invoke("-q", "run", "--input", sheet, "--outdir", tmp_path / "out", "--min-genes-spot", "1000", *FAST)
    alone = invoke("qc", "--sample", "tiny", "--sc", tmp_path / "in" / "sc.h5ad", "--st", tmp_path / "in" / "st.h5ad",
                   "--outdir", tmp_path / "alone", "--min-genes-spot", "1000")
    assert_one_line_error(through_run, "QC removed every one of the", "lower --min-genes-spot")
    assert error_lines(through_run) == error_lines(alone)
    debug = CliRunner().invoke(cli, ["--debug", "run", "--input", str(sheet), "--outdir", str(tmp_path / "dbg"), "--min-genes-spot", "1000", *FAST])
    assert isinstance(debug.exception, InputError)  # --debug: the exception (and its traceback) comes through


def test_run_accepts_every_option_its_messages_suggest():
    result = invoke("run", "--help")
    for option in ("--already-normalized", "--min-genes-cell", "--min-genes-spot", "--min-cells-gene", "--no-scale-min-genes",
                   "--case-insensitive", "--n-folds", "--device"):
        assert option in result.output, option


def _log_normalized(data):
    data.X = np.log1p(data.X.toarray() if hasattr(data.X, "toarray") else data.X).astype(np.float32)


def test_log_normalized_input_names_the_users_file(tmp_path, tiny_paths):
    sheet = tiny_copy(tmp_path / "in", tiny_paths, sc=_log_normalized)
    user_file = tmp_path / "in" / "sc.h5ad"
    result = invoke("run", "--input", sheet, "--outdir", tmp_path / "out", *FAST)
    assert_one_line_error(result, f"{user_file}: no raw integer counts found (looked in X", "--already-normalized to `causalged run`")
    assert not (tmp_path / "out").exists()  # checked before any step
    # step by step, normalize reads QC's copy but still names the user's file
    assert invoke("qc", "--sample", "tiny", "--sc", user_file, "--st", tmp_path / "in" / "st.h5ad", "--outdir", tmp_path / "qc").exit_code == 0
    step = invoke("normalize", "--sample", "tiny", "--sc", tmp_path / "qc" / "tiny.sc.qc.h5ad", "--st", tmp_path / "qc" / "tiny.st.qc.h5ad",
                  "--outdir", tmp_path / "norm")
    assert_one_line_error(step, f"{user_file}: the matrix holds non-integer values")


# ----------------------------------------------------------------------------- 4. no raw tracebacks
def test_too_few_shared_genes_fail_before_any_step(tmp_path, tiny_paths):
    shared = sorted(set(ad.read_h5ad(tiny_paths["sc"]).var_names) & set(ad.read_h5ad(tiny_paths["st"]).var_names))
    sheet = tiny_copy(tmp_path / "in", tiny_paths, st=lambda d: d[:, shared[:2]].copy())
    started = time.perf_counter()
    result = invoke("run", "--input", sheet, "--outdir", tmp_path / "out", *FAST)
    assert_one_line_error(result, "st.h5ad: only 2 genes are shared", "at least 3 shared genes are needed")
    assert time.perf_counter() - started < 60 and not (tmp_path / "out").exists()


def test_too_many_folds_for_the_genes_is_an_error():
    from causalged.preprocess import make_gene_splits

    with pytest.raises(InputError, match="pass --n-folds 3"):
        make_gene_splits(["a", "b", "c"], n_folds=2)
    assert make_gene_splits(["a", "b", "c"], n_folds=3)["n_folds"] == 3


def _read_only_folder() -> Path:
    """An existing folder no file can be created in, even as root (/sys is mounted read-only)."""
    probe = Path("/sys") / "causalged-probe"
    try:
        probe.touch()
    except OSError:
        return Path("/sys")
    probe.unlink()
    pytest.skip("no read-only folder on this machine")


def test_read_only_output_folder_is_one_line_before_any_work(tmp_path, tiny_paths, tiny_preprocessed):
    out = _read_only_folder()
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    result = invoke("run", "--input", sheet, "--outdir", out, *FAST)
    assert_one_line_error(result, "could not be written", "Fix: ")
    assert error_lines(result)[0].startswith(f"Error: {out}: ")  # the folder itself, probed first: not a step's file
    p = tiny_preprocessed
    hvg_inputs = ["--sample", "tiny", "--sc", p["sc"], "--st", p["st"], "--split", p["split"]]
    for step in (["qc", "--sample", "tiny", "--sc", tmp_path / "in" / "sc.h5ad", "--st", tmp_path / "in" / "st.h5ad"],
                 ["crossval", *hvg_inputs, "--fold", "0", "--methods", "knn"], ["train", *hvg_inputs, "--method", "knn"]):
        result = invoke(*step, "--outdir", out / step[0])
        assert_one_line_error(result, "could not be written")
        assert error_lines(result)[0].startswith(f"Error: {out / step[0]}: "), step[0]  # probed before the computing


def test_output_path_under_a_file_is_one_line(tmp_path, tiny_paths):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    assert_one_line_error(invoke("run", "--input", sheet, "--outdir", blocker / "sub", *FAST), str(blocker), "is a file")


def test_disk_full_write_names_the_path_and_leaves_nothing(tmp_path):
    from causalged.io import atomic_write

    def to_a_full_disk(tmp):
        with open("/dev/full", "wb") as full, open(tmp, "wb"):
            full.write(b"x" * 10_000)
            full.flush()

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    target = tmp_path / "out.h5ad"
    with pytest.raises(InputError, match=rf"{target}: could not be written.*No space left on device.*Fix: free disk space"):
        atomic_write(target, to_a_full_disk)
    assert list(tmp_path.iterdir()) == []


def test_run_checks_free_space_before_any_work(tmp_path, tiny_paths, monkeypatch):
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    result = invoke("run", "--input", sheet, "--outdir", tmp_path / "out", *FAST)
    assert_one_line_error(result, "MB are free on this disk", "free disk space")
    assert not (tmp_path / "out").exists()


def test_truncated_fold_file_is_named(tmp_path, tiny_preprocessed):
    p = tiny_preprocessed
    inputs = ["--sample", "tiny", "--sc", p["sc"], "--st", p["st"], "--split", p["split"]]
    assert invoke("crossval", *inputs, "--fold", "0", "--methods", "knn", "--outdir", tmp_path).exit_code == 0
    fold = tmp_path / "tiny.fold0.predictions.h5ad"
    fold.write_bytes(fold.read_bytes()[: fold.stat().st_size // 2])
    result = invoke("evaluate", *inputs, "--outdir", tmp_path / "eval", "--no-figures", fold)
    assert_one_line_error(result, f"{fold}: could not be read as a fold predictions file", "re-run `causalged crossval`")


def test_directory_as_samplesheet(tmp_path):
    assert_one_line_error(invoke("validate-samplesheet", "--input", tmp_path), str(tmp_path), "is a directory, not a CSV file")


# ----------------------------------------------------------------------------- 5. honest devices
def test_cuda_without_gpu_fails_before_any_work_whatever_the_method(tmp_path, tiny_paths, tiny_preprocessed, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    assert_one_line_error(invoke("run", "--input", sheet, "--outdir", tmp_path / "out", "--device", "cuda", *FAST), "--device cuda", "no CUDA GPU")
    assert not (tmp_path / "out").exists()
    p = tiny_preprocessed
    for command in (["crossval", "--fold", "0", "--methods", "tangram"], ["train", "--method", "knn"]):
        result = invoke(*command, "--sample", "tiny", "--sc", p["sc"], "--st", p["st"], "--split", p["split"], "--device", "cuda",
                        "--outdir", tmp_path / command[0])
        assert_one_line_error(result, "no CUDA GPU")
        assert not (tmp_path / command[0]).exists()


# ----------------------------------------------------------------------------- 6. degenerate data
def _duplicate_first_name(axis):
    def change(data):
        names = list(getattr(data, f"{axis}_names"))
        names[1] = names[0]
        setattr(data, f"{axis}_names", pd.Index(names))
    return change


@pytest.mark.parametrize("role,axis,message", [("sc", "obs", "cell names appear more than once"),
                                               ("st", "obs", "spot names appear more than once"),
                                               ("st", "var", "gene names appear more than once in the ST panel")])
def test_duplicated_names_are_an_error(tmp_path, tiny_paths, role, axis, message):
    tiny_copy(tmp_path, tiny_paths, **{role: _duplicate_first_name(axis)})
    result = invoke("qc", "--sample", "tiny", "--sc", tmp_path / "sc.h5ad", "--st", tmp_path / "st.h5ad", "--outdir", tmp_path / "qc")
    assert_one_line_error(result, f"{role}.h5ad: ", message, "Fix: ")


def test_case_insensitive_clash_is_an_error():
    from causalged.preprocess import match_genes

    sc_data = ad.AnnData(np.ones((2, 2), dtype=np.float32), var=pd.DataFrame(index=["GAD1", "SST"]))
    st_data = ad.AnnData(np.ones((2, 3), dtype=np.float32), var=pd.DataFrame(index=["Gad1", "GAD1", "SST"]))
    with pytest.raises(InputError, match="become the same gene .GAD1"):
        match_genes(sc_data, st_data, case_insensitive=True)


def test_st_gene_dropped_by_qc_is_reported_and_never_a_target(tmp_path, tiny_paths, caplog):
    from causalged.steps import hvg as hvg_step, normalize as normalize_step, qc as qc_step

    panel = [g for g in ad.read_h5ad(tiny_paths["st"]).var_names if g in set(ad.read_h5ad(tiny_paths["sc"]).var_names)]
    silent = panel[0]

    def zero_gene(data):
        X = data.X.toarray() if hasattr(data.X, "toarray") else np.array(data.X)
        X[:, list(data.var_names).index(silent)] = 0
        data.X = X

    tiny_copy(tmp_path, tiny_paths, st=zero_gene)
    (tmp_path / "genes.txt").write_text(f"{silent}\n")  # even asked for by name, a measured gene is not imputed
    with caplog.at_level("WARNING"):
        q = qc_step.run(sample="tiny", sc=tmp_path / "sc.h5ad", st=tmp_path / "st.h5ad", outdir=tmp_path / "qc")
        assert silent in caplog.text and "never imputed as targets" in caplog.text
        n = normalize_step.run(sample="tiny", sc=q["sc"], st=q["st"], outdir=tmp_path / "norm")
        h = hvg_step.run(sample="tiny", sc=n["sc"], st=n["st"], outdir=tmp_path / "hvg", genes=tmp_path / "genes.txt", n_folds=3)
    assert "detected in no spot (removed by QC); they are not imputed" in caplog.text
    split = json.loads(h["split"].read_text())
    assert silent not in split["target_genes"] and silent not in split["shared_genes"]
    assert silent not in ad.read_h5ad(h["sc"]).var_names


def test_checkpoint_from_another_seed_or_other_data_is_refused(tmp_path, tiny_preprocessed):
    p = tiny_preprocessed
    args = ["train", "--sample", "tiny", "--sc", p["sc"], "--st", p["st"], "--split", p["split"], "--method", "causalged", "--epochs", "2",
            "--checkpoint-every", "1", "--outdir", tmp_path]
    assert invoke(*args, "--seed", "0").exit_code == 0
    checkpoint = tmp_path / "tiny.model" / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()
    result = invoke(*args, "--seed", "1", "--resume")
    assert_one_line_error(result, str(checkpoint), "trained with seed 0, but this run asks for seed 1", "train without --resume")
    assert checkpoint.read_bytes() == before

    from causalged.model.training import GeneSet, data_fingerprint, _check_resumable

    genes = GeneSet(torch.ones(4, 3), torch.ones(4, 5))
    other = GeneSet(torch.zeros(4, 3), torch.ones(4, 5))
    with pytest.raises(InputError, match="trained on other data"):
        _check_resumable(checkpoint, data_fingerprint(genes, None, 0), data_fingerprint(other, None, 0))


# ----------------------------------------------------------------------------- 7. kill, fault injection, resume
KILL_BEFORE_RENAME = """
import os, signal, sys
from pathlib import Path
from causalged.steps import qc as qc_step
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # the temporary is written, the rename never happens
qc_step.run(sample="tiny", sc=Path(sys.argv[1]), st=Path(sys.argv[2]), outdir=Path(sys.argv[3]))
"""


def _fold0_recorded(out: Path) -> bool:
    """Fold 0 is finished once the resume log says so (its file is renamed into place a moment before)."""
    try:
        records = json.loads((out / "pipeline_info" / "resume.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return bool(records.get("tiny/crossval fold 0", {}).get("finished"))


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, tiny_paths):
    """A write killed between temporary and rename, then `causalged run` killed mid-way and run again (twice)."""
    root = tmp_path_factory.mktemp("resume")
    sheet = tiny_copy(root / "in", tiny_paths)
    out = root / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    faulted = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, str(root / "in" / "sc.h5ad"), str(root / "in" / "st.h5ad"),
                              str(out / "tiny" / "qc")], env=env, capture_output=True, text=True)
    record = {"fault_rc": faulted.returncode, "temporaries": sorted((out / "tiny" / "qc").glob(".*.tmp")),
              "final_after_fault": (out / "tiny" / "qc" / "tiny.sc.qc.h5ad").exists()}
    inputs = checksums(root / "in")
    args = ["run", "--input", str(sheet), "--outdir", str(out), *FAST]
    proc = subprocess.Popen([sys.executable, "-m", "causalged.cli", "-q", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fold0 = out / "tiny" / "crossval" / "tiny.fold0.predictions.h5ad"
    deadline = time.time() + 300
    while not _fold0_recorded(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    record["run_rc"] = proc.wait()
    record["removed_temporaries"] = not any((out / "tiny" / "qc").glob(".*.tmp"))
    stale_fold = out / "tiny" / "crossval" / "tiny.fold7.predictions.h5ad"  # as if from an earlier 10-fold run
    shutil.copy(fold0, stale_fold)
    qc_file = out / "tiny" / "qc" / "tiny.sc.qc.h5ad"
    record["qc_mtime"] = qc_file.stat().st_mtime_ns
    resumed = CliRunner().invoke(cli, args)
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    record["resumed_trace"] = json.loads((out / "pipeline_info" / "execution_trace.json").read_text())["trace"]
    record["qc_mtime_after"] = qc_file.stat().st_mtime_ns
    record["stale_fold_left"] = stale_fold.exists()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    record["again_trace"] = json.loads((out / "pipeline_info" / "execution_trace.json").read_text())["trace"]
    record["params"] = json.loads((out / "pipeline_info" / "params.json").read_text())
    record["inputs_unchanged"] = checksums(root / "in") == inputs
    record["out"] = out
    return record


def test_a_write_killed_before_its_rename_leaves_only_a_temporary_that_run_removes(killed_and_resumed):
    r = killed_and_resumed
    assert r["fault_rc"] == -signal.SIGKILL
    assert r["temporaries"] and not r["final_after_fault"]
    assert r["removed_temporaries"]


def test_killed_run_continues_where_it_stopped(killed_and_resumed):
    r = killed_and_resumed
    assert r["run_rc"] == -signal.SIGKILL, "the run finished before it could be killed"
    skipped = {t["step"] for t in r["resumed_trace"] if t["skipped"]}
    assert {"qc", "normalize", "hvg", "crossval fold 0"} <= skipped
    assert {"train", "impute", "evaluate"}.isdisjoint(skipped)
    assert r["qc_mtime_after"] == r["qc_mtime"]  # skipped, not rewritten
    assert (r["out"] / "tiny" / "impute" / "tiny.imputed.h5ad").exists()


def test_unchanged_run_skips_every_step_and_no_input_changes(killed_and_resumed):
    r = killed_and_resumed
    assert all(t["skipped"] for t in r["again_trace"]), [t["step"] for t in r["again_trace"] if not t["skipped"]]
    assert r["inputs_unchanged"]


def test_fold_files_of_another_configuration_are_removed(killed_and_resumed):
    assert not killed_and_resumed["stale_fold_left"]
    assert sorted(p.name for p in (killed_and_resumed["out"] / "tiny" / "crossval").iterdir()) == [f"tiny.fold{k}.predictions.h5ad" for k in range(3)]


def test_device_used_is_recorded_per_step(killed_and_resumed):
    from causalged.device import resolve_device

    r = killed_and_resumed
    assert {t["device"] for t in r["resumed_trace"]} == {"cpu"}  # knn and spot_depth run on the CPU wherever they are
    assert r["params"]["device"] == "auto" and r["params"]["device_used"] == str(resolve_device("auto"))


def test_a_changed_parameter_reruns_only_what_it_touches(killed_and_resumed, tmp_path):
    from causalged.cli import cli
    from causalged.params import BY_NAME
    from causalged.pipeline import ResumeLog, Task, _settings, run_values, step_hash

    r = killed_and_resumed
    log = ResumeLog(r["out"] / "pipeline_info" / "resume.json")
    argv = next(t for t in r["again_trace"] if t["step"] == "qc")["command"].split()[2:]
    values = cli.commands["qc"].make_context("qc", argv).params  # the recorded command line, parsed back
    qc = {BY_NAME[k].keyword: v for k, v in values.items()}
    with _settings(run_values()):  # the environment settings the run gave its steps
        assert log.finished("tiny/qc", step_hash(Task("qc", "qc", qc)))
        assert not log.finished("tiny/qc", step_hash(Task("qc", "qc", {**qc, "min_cells_gene": 2})))
        assert not log.finished("tiny/qc", step_hash(Task("qc", "qc", {**qc, "scale_min_genes": False})))


def test_failed_report_keeps_the_previous_one_and_leaves_no_temporary(tmp_path):
    from causalged.report import run_multiqc

    report = tmp_path / "multiqc" / "multiqc_report.html"
    report.parent.mkdir()
    report.write_text("the previous report")
    bad_config = tmp_path / "bad.yml"
    bad_config.write_text("title: [unclosed\n  : :\n")
    with pytest.raises(RuntimeError, match="MultiQC failed"):
        run_multiqc([tmp_path], report.parent, config=bad_config)
    assert report.read_text() == "the previous report"
    assert list(report.parent.iterdir()) == [report]  # MultiQC's staging folder is gone


def test_training_resumes_only_its_own_checkpoint(tmp_path, tiny_preprocessed):
    """A killed training continues (--resume); a training of another configuration starts afresh, its checkpoints cleared."""
    from causalged.pipeline import ResumeLog, Task, _run_task, step_hash

    p = tiny_preprocessed
    task = Task("train", "train", {"sample": "tiny", "sc": p["sc"], "st": p["st"], "split": p["split"], "outdir": tmp_path, "method": "knn"})
    checkpoint = tmp_path / "tiny.model" / "checkpoints" / "last.pt"
    log = ResumeLog(tmp_path / "resume.json")
    for started_with, kept in ((step_hash(task), True), ("another configuration", False)):
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"checkpoint")
        log.update("tiny/train", started=started_with, finished=None)
        _run_task(log, "tiny", task, device="cpu")
        assert checkpoint.exists() == kept, started_with


# ----------------------------------------------------------------------------- one run per output folder, safe sample ids
def test_a_second_run_into_the_same_folder_stops_at_once_naming_the_first(tmp_path, tiny_paths):
    import json
    import socket
    import subprocess

    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(["sleep", "60"])  # stands for a run in progress
    try:
        (out / ".causalged-run.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "2026-12-06T10:00:00"}))
        result = invoke("run", "--input", sheet, "--outdir", out, *FAST)
        assert_one_line_error(result, f"another `causalged run` (PID {holder.pid}", "started 2026-12-06T10:00:00", "choose another --outdir")
        assert sorted(p.name for p in out.iterdir()) == [".causalged-run.lock"]  # nothing written beside it
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over, and released when the run ends
    result = invoke("run", "--input", sheet, "--outdir", out, *FAST)
    assert result.exit_code == 0, result.output
    assert not (out / ".causalged-run.lock").exists() and (out / "multiqc" / "multiqc_report.html").is_file()


@pytest.mark.parametrize("sample", ["../../escape", "/abs/path", ".hidden", "a/b"])
def test_a_sample_id_that_is_not_a_file_name_is_refused_by_every_step(tmp_path, tiny_paths, sample):
    result = invoke("qc", "--sample", sample, "--sc", tiny_paths["sc"], "--st", tiny_paths["st"], "--outdir", tmp_path / "qc")
    assert result.exit_code == 2 and "Invalid value for '--sample'" in result.output and "inside --outdir" in result.output
    assert not (tmp_path / "qc").exists() and not list(tmp_path.parent.glob("escape*"))


def test_a_changed_setting_reruns_and_the_log_says_why(tmp_path, tiny_paths, monkeypatch):
    """CAUSALGED_MAX_FIT_CELLS (--max-fit-cells) changes results: a rerun with another value must not serve the old ones."""
    import json

    monkeypatch.delenv("CAUSALGED_MAX_FIT_CELLS", raising=False)  # the run sets it for its steps and restores it after
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    out = tmp_path / "out"
    args = ["run", "--input", sheet, "--outdir", out, "--skip-evaluation", "--n-folds", "3"]
    assert invoke(*args).exit_code == 0

    def trace():
        return {t["step"]: t["skipped"] for t in json.loads((out / "pipeline_info" / "execution_trace.json").read_text())["trace"]}

    assert invoke(*args).exit_code == 0 and all(trace().values())  # nothing changed: every step skipped
    result = invoke(*args, "--max-fit-cells", "100")
    assert result.exit_code == 0 and not any(trace().values())
    assert "impute runs: its settings changed since it last finished" in result.output
    assert "CAUSALGED_MAX_FIT_CELLS" not in __import__("os").environ


# ----------------------------------------------------------------------------- degenerate data (thresholds: causalged.formats)
@pytest.mark.parametrize("case, change, fragment", [
    ("two spots", {"st": lambda d: d[:2].copy()}, "the spatial data has 2 spots; imputation and its scores need at least 10"),
    ("three cells", {"sc": lambda d: d[:3].copy()}, "the reference has 3 cells; it needs at least 10"),
    ("one position", {"st": lambda d: d.obsm.__setitem__("spatial", np.zeros((d.n_obs, 2)))}, "every spot has the same position"),
])
def test_degenerate_data_fail_before_any_step(tmp_path, tiny_paths, case, change, fragment):
    sheet = tiny_copy(tmp_path / "in", tiny_paths, **change)
    result = invoke("run", "--input", sheet, "--outdir", tmp_path / "out", *FAST)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, fragment", [
    ("NotAGene\nAlsoNot\n", "no gene of the list can be imputed: 2 are not in the reference and 0 are measured by the panel"),
    (None, "no gene of the list can be imputed: 0 are not in the reference and 2 are measured by the panel"),
    (b"\xff\xfe\x00bad", "the gene list is not UTF-8 text"),
])
def test_a_gene_list_with_nothing_to_impute_is_an_error(tmp_path, tiny_paths, content, fragment):
    sheet = tiny_copy(tmp_path / "in", tiny_paths)
    genes = tmp_path / "in" / "genes.txt"
    if content is None:  # two genes the panel measures
        genes.write_text("\n".join(list(ad.read_h5ad(tiny_paths["st"]).var_names[:2])) + "\n")
    elif isinstance(content, bytes):
        genes.write_bytes(content)
    else:
        genes.write_text(content)
    result = invoke("run", "--input", sheet, "--outdir", tmp_path / "out", *FAST)
    assert_one_line_error(result, fragment)


def test_a_byte_order_mark_is_not_part_of_the_first_gene(tmp_path):
    from causalged.io import read_gene_list

    path = tmp_path / "genes.txt"
    path.write_bytes("\ufeffGad1\nSst\n".encode("utf-8"))
    assert read_gene_list(path) == ["Gad1", "Sst"]


def test_evaluate_refuses_fold_files_of_another_split(tmp_path, tiny_preprocessed):
    """A fold file whose held-out genes are not that fold of the split given is one line, not a silent wrong score."""
    import json

    from causalged.steps import crossval

    p = tiny_preprocessed
    folds = [crossval.run(sample="tiny", sc=p["sc"], st=p["st"], split=p["split"], fold=k, outdir=tmp_path / "folds", methods="knn", n_samples=0)
             for k in range(2)]
    other = json.loads(p["split"].read_text())
    other["folds"] = [other["folds"][1], other["folds"][0], *other["folds"][2:]]  # another run's split: the folds are not these genes
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = invoke("evaluate", "--sample", "tiny", "--sc", p["sc"], "--st", p["st"], "--split", tmp_path / "other.json",
                    "--outdir", tmp_path / "ev", "--no-figures", *folds)
    assert_one_line_error(result, "its held-out genes are not fold 0 of", "pass the fold files that `causalged crossval` wrote with this split")
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").iterdir())


def test_report_of_a_mistyped_folder_is_one_line(tmp_path):
    result = invoke("report", "--outdir", tmp_path / "no_such_run")
    assert_one_line_error(result, "this folder does not exist", "pass the --outdir of a finished run")
    assert not (tmp_path / "no_such_run").exists()
