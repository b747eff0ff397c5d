"""The single-machine route: the pipeline's steps called in this process, the same outputs as Nextflow.

Each step is the function the step's command calls (:mod:`causalged.steps`), given the keyword
values :func:`causalged.params.step_values` derives from the run's parameters, the very values the
Nextflow route renders into the step's command line (a test compares them flag by flag). Outputs
go to the same layout: ``<outdir>/<sample>/<step>/``, ``<outdir>/pipeline_info/`` and
``<outdir>/multiqc/multiqc_report.html``.

Reliability: everything that can be checked is checked before the first step (parameters,
device, output folder, every input), so bad input fails in seconds with nothing written.
``pipeline_info/resume.json`` records, per step, a hash of its keyword values, the environment
settings the steps read and its input files, and the digests of the files it wrote; a step whose
record still matches is skipped, so the same command continues a killed run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from causalged import params as spec
from causalged.errors import InputError
from causalged.io import check_writable, ensure_not_input, file_digest, is_temporary, remove_stale_temporaries, write_json_atomic
from causalged.report import run_multiqc, software_versions, write_mqc_table
from causalged.samplesheet import Sample, read_samplesheet
from causalged.steps import step_module

log = logging.getLogger(__name__)

#: Free space asked of the output disk: a multiple of the inputs' size (import, qc, normalize and
#: hvg each write a copy of both matrices, normalize with the counts beside the log values), plus
#: what does not grow with the inputs (figures, fold files and models of a small sample: the demo
#: writes 16 MB from 0.9 MB of inputs) and the report.
SPACE_FACTOR = 7
SPACE_PER_SAMPLE = 30_000_000
SPACE_REPORT = 20_000_000


@dataclass
class Task:
    """One step of one sample: its name in the log and resume record, the step, and its keyword values."""

    name: str
    step: str
    kwargs: dict[str, Any]

    @property
    def outdir(self) -> Path:
        return Path(self.kwargs["outdir"])

    @property
    def command(self) -> str:
        return "causalged " + " ".join(spec.command_line(self.step, self.kwargs))


def run_values(**given) -> dict[str, Any]:
    """Every parameter of a run by name: the table's defaults, then ``given`` (checked)."""
    values = {p.name: p.default for p in spec.run_params()}
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise TypeError(f"unknown run parameter(s) {', '.join(unknown)}")
    values.update(given)
    for name, value in values.items():
        spec.check_value(spec.BY_NAME[name], value)
    return values


def run_pipeline(values: dict[str, Any], *, cpus: int | None = None) -> Path:
    """Check everything, run (or skip, when unchanged) every step of every sample; return the MultiQC report path."""
    values = run_values(**values)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_settings(values))
        return _run_pipeline(values, cpus=cpus, lock=lambda outdir: stack.enter_context(OutputLock(outdir)))


@contextlib.contextmanager
def _settings(values: dict[str, Any]):
    """The run's environment settings (``--max-fit-cells`` -> CAUSALGED_MAX_FIT_CELLS, ...), which the steps read as
    Nextflow's tasks do; the caller's environment is restored afterwards."""
    names = [p for p in spec.run_params() if p.env]
    before = {p.env: os.environ.get(p.env) for p in names}
    os.environ.update({p.env: str(values[p.name]) for p in names})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_pipeline(values: dict[str, Any], *, cpus: int | None, lock) -> Path:
    outdir = Path(values["outdir"])
    device = str(check_run_params(values))
    check_writable(outdir)
    resume = ResumeLog(outdir / "pipeline_info" / "resume.json")
    trace = []
    samplesheet = values["input"]
    if values["demo"]:  # our own data, regenerated only when the seed changed
        lock(outdir)
        demo = outdir / "demo_data"
        trace.append(_run_task(resume, "demo", Task("simulate", "simulate", {"outdir": demo, "name": "demo", "size": "demo",
                                                                              "seed": values["seed"]}), device=device))
        samplesheet = demo / "samplesheet.csv"
    samples = read_samplesheet(samplesheet)
    check_inputs(samples, Path(samplesheet), outdir, values)
    if not values["demo"]:
        lock(outdir)  # after the checks, so that bad input leaves nothing behind; before the first write
    for folder in [outdir / s.id for s in samples] + [outdir / "pipeline_info", outdir / "multiqc", outdir / "demo_data"]:
        for stale in remove_stale_temporaries(folder):
            log.warning("removed %s, a temporary file left by a killed write", stale)
    info = outdir / "pipeline_info"
    started = datetime.now(timezone.utc)
    write_json_atomic({"samplesheet": str(Path(samplesheet).resolve()), "started": started.isoformat(),
                       **{k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}, "cpus": cpus, "device_used": device},
                      info / "params.json")
    for sample in samples:
        trace += run_sample(sample, outdir, values, resume, device=device, cpus=cpus)
    write_json_atomic({"versions": software_versions(), "trace": trace, "finished": datetime.now(timezone.utc).isoformat()}, info / "execution_trace.json")
    import pandas as pd

    write_mqc_table(
        pd.DataFrame([{"Sample": f"{t['sample']} {t['step']}", "seconds": round(t["seconds"], 1), "device": t["device"],
                       "skipped (unchanged)": t["skipped"]} for t in trace]),
        info / "steps_mqc.tsv", section_id="causalged_runtime", section_name="Step run times",
        description="Wall time and device of each step on this machine (single-machine route); skipped steps were unchanged since they last finished.",
    )
    return run_multiqc([outdir], outdir / "multiqc", title="CausalGeD")


class OutputLock:
    """``<outdir>/.causalged-run.lock``: one `causalged run` writes into a folder at a time.

    The lock records the holder's PID, host and start time. A second run stops at once with one
    line naming them; a lock whose process is gone (a killed run, on this host) is stale and taken over.
    """

    NAME = ".causalged-run.lock"

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / self.NAME

    def __enter__(self) -> "OutputLock":
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._holder()
                if other.get("host") == record["host"] and not _alive(other.get("pid")):
                    log.warning("%s: removing the lock of a run that is gone (PID %s, started %s)", self.path.parent, other.get("pid"), other.get("started"))
                    self.path.unlink(missing_ok=True)
                    continue
                raise InputError(self.path.parent, f"another `causalged run` (PID {other.get('pid')} on {other.get('host')}, started "
                                                   f"{other.get('started')}) is writing to this folder",
                                 f"wait for it to finish, or choose another --outdir (if no such run exists, delete {self.path})") from None
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
            return self
        raise InputError(self.path.parent, "could not take the output folder's lock", f"delete {self.path} and run again")

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}

    def __exit__(self, *exc) -> None:
        if self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


# --------------------------------------------------------------------------- checks before any step
def check_run_params(values: dict[str, Any]):
    """Methods and the device; returns the torch device the model steps will use."""
    from causalged.device import resolve_device
    from causalged.methods import parse_methods

    parse_methods([values["method"]])
    if not values["skip_evaluation"]:
        parse_methods(values["eval_methods"])
    if values["n_samples"] < 1:
        raise InputError(None, f"--n-samples must be at least 1 (the imputation draws that many samples), got {values['n_samples']}",
                         "pass --n-samples 1 or more")
    if values["top_fraction"] == 0:
        raise InputError(None, "--top-fraction must be above 0, got 0", "pass a fraction such as 0.25")
    return resolve_device(values["device"])  # --device cuda without a GPU: an error here, before any work


def check_inputs(samples: list[Sample], samplesheet: Path, outdir: Path, values: dict[str, Any]) -> None:
    """Every sample's inputs are read and checked as the steps will need them, and none is in harm's way."""
    from causalged import formats, preprocess
    from causalged.io import read_gene_list
    from causalged.stream import read_reference, stored_entries, stream_limit

    owned = [outdir / s.id for s in samples] + [outdir / "pipeline_info", outdir / "multiqc"]
    inputs = [samplesheet, *(p for s in samples for p in (s.sc, s.st, s.genes) if p is not None)]
    for path in inputs:
        for folder in owned:
            if Path(path).resolve().is_relative_to(folder.resolve()):
                raise InputError(path, f"this input lies inside {folder}, a folder `causalged run` writes and cleans", "choose another --outdir")
    for name in ("params.json", "execution_trace.json", "resume.json"):
        ensure_not_input(outdir / "pipeline_info" / name, inputs)
    needed = SPACE_FACTOR * sum(_size(Path(p)) for p in inputs) + SPACE_PER_SAMPLE * len(samples) + SPACE_REPORT
    free = shutil.disk_usage(next(p for p in (outdir, *outdir.absolute().parents) if p.exists())).free
    if free < needed:
        raise InputError(outdir, f"only {free / 1e6:.0f} MB are free on this disk; the run needs about {needed / 1e6:.0f} MB "
                                 f"({SPACE_FACTOR} x the inputs, and {SPACE_PER_SAMPLE / 1e6:.0f} MB a sample and {SPACE_REPORT / 1e6:.0f} MB for the report)", "free disk space, or choose an --outdir on a disk with room")
    for sample in samples:
        # each input read as the import step will read it (instrument folders and reference formats included)
        st_data, _ = formats.read_spatial(sample.st, bin_size=values["bin_size"], platform=sample.platform)
        if not values["already_normalized"] and not preprocess.is_integer_matrix(st_data.X):
            raise InputError(sample.st, "the spatial counts hold non-integer values, so they look normalized already; normalizing them again would distort them",
                             "provide raw counts, or pass --already-normalized to `causalged run` if these are log-normalized values")
        if formats.reference_layout(sample.sc) == "h5ad" and stored_entries(sample.sc) > stream_limit():
            with read_reference(sample.sc) as sc_data:  # on disk: its values are checked as the qc and normalize steps read its blocks
                shared = preprocess.match_genes(sc_data, st_data, case_insensitive=values["case_insensitive"], st_path=sample.st)
        else:
            sc_data, _ = formats.read_reference(sample.sc, gene_symbols=values["gene_symbols"], already_normalized=values["already_normalized"])
            formats.match_gene_ids(sc_data, st_data, gene_symbols=values["gene_symbols"], sc_path=sample.sc, st_path=sample.st)
            shared = preprocess.match_genes(sc_data, st_data, case_insensitive=values["case_insensitive"], st_path=sample.st)
        formats.check_sizes(sc_data, st_data, sc_path=sample.sc, st_path=sample.st)
        # QC can only lower this count; the hvg step checks again on what QC kept
        preprocess.make_gene_splits(shared, n_folds=values["n_folds"], seed=values["seed"], path=sample.st)
        if sample.genes:
            formats.check_gene_list(read_gene_list(sample.genes), sc_data, st_data, path=sample.genes)


def _size(path: Path) -> int:
    """Bytes of a file, or of a folder's files (an instrument folder)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


# --------------------------------------------------------------------------- the steps of a sample
def sample_tasks(sample: Sample, outdir: Path, values: dict[str, Any], n_folds: int | None = None) -> list[Task]:
    """The steps, in order, that process one sample, with the keyword values the Nextflow modules pass.

    Without ``n_folds`` (not known before the hvg step has written the split) the list stops
    after hvg; with it, it goes on with the evaluation branch (one crossval per fold, then
    evaluate) and ends with train -> impute, whose genes then carry the evaluation's trust.
    """
    s = sample.id
    d = {step: outdir / s / step for step in ("import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality", "ablation")}

    def task(name: str, step: str, **inputs) -> Task:
        return Task(name, step, {**inputs, **spec.step_values(step, values)})

    imported = step_module("import").outputs(s, d["import"])
    qc = step_module("qc").outputs(s, d["qc"])
    norm = step_module("normalize").outputs(s, d["normalize"])
    hvg = step_module("hvg").outputs(s, d["hvg"])
    if n_folds is None:
        tasks = [task("import", "import", sample=s, sc=sample.sc, st=sample.st, outdir=d["import"], platform=sample.platform),
                 task("qc", "qc", sample=s, sc=imported["sc"], st=imported["st"], outdir=d["qc"]),
                 task("normalize", "normalize", sample=s, sc=qc["sc"], st=qc["st"], outdir=d["normalize"]),
                 task("hvg", "hvg", sample=s, sc=norm["sc"], st=norm["st"], genes=sample.genes, outdir=d["hvg"])]
        if values["run_causality"]:
            tasks.append(task("causality", "causality", sample=s, sc=norm["sc"], st=norm["st"], outdir=d["causality"]))
        return tasks
    inputs = {"sample": s, "sc": hvg["sc"], "st": hvg["st"]}
    tasks, trust = [], None
    if not values["skip_evaluation"]:
        folds = [task(f"crossval fold {k}", "crossval", **inputs, split=hvg["split"], fold=k, outdir=d["crossval"]) for k in range(n_folds)]
        predictions = [step_module("crossval").outputs(s, d["crossval"], fold=k)["predictions"] for k in range(n_folds)]
        tasks += [*folds, task("evaluate", "evaluate", **inputs, split=hvg["split"], predictions=predictions, outdir=d["evaluate"])]
        trust = step_module("evaluate").outputs(s, d["evaluate"])["trust"]
    tasks += [task("train", "train", **inputs, split=hvg["split"], outdir=d["train"]),
              task("impute", "impute", **inputs, model=step_module("train").outputs(s, d["train"])["model"], trust=trust, outdir=d["impute"])]
    if values["run_ablation"]:
        ablation = step_module("ablate").outputs(s, d["ablation"])
        tasks.append(Task("ablation", "ablate", {"datasets": [str(d["ablation"] / s)], "output": ablation["page"],
                                                   "mqc_dir": ablation["mqc_dir"], **spec.step_values("ablate", values)}))
    return tasks


def link_dataset(sample: Sample, dataset: Path) -> Path:
    """The ablation reads a dataset folder (raw-count sc.h5ad + st.h5ad) named after the sample, as the Nextflow module links it."""
    dataset.mkdir(parents=True, exist_ok=True)
    for name, source in (("sc.h5ad", sample.sc), ("st.h5ad", sample.st)):
        link = dataset / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(source).resolve())
    return dataset


def run_sample(sample: Sample, outdir: Path, values: dict[str, Any], resume: "ResumeLog", *, device: str, cpus: int | None = None) -> list[dict]:
    trace = []
    preprocessing = sample_tasks(sample, outdir, values)
    with tqdm(total=len(preprocessing), desc=f"{sample.id}", unit="step") as bar:
        for task in preprocessing:
            trace.append(_run_task(resume, sample.id, task, device=device))
            bar.update()
        split = json.loads(step_module("hvg").outputs(sample.id, outdir / sample.id / "hvg")["split"].read_text())
        remove_stale_folds(outdir / sample.id / "crossval", sample.id, split["n_folds"])
        rest = sample_tasks(sample, outdir, values, n_folds=split["n_folds"])
        bar.total += len(rest)
        folds = [t for t in rest if t.step == "crossval"]
        if values["workers"] > 1 and len(folds) > 1:
            trace += _run_folds_in_parallel(resume, sample.id, folds, device=device, workers=values["workers"], cpus=cpus, bar=bar)
            rest = [t for t in rest if t.step != "crossval"]
        for task in rest:
            if task.step == "ablate":
                link_dataset(sample, Path(task.kwargs["datasets"][0]))
            trace.append(_run_task(resume, sample.id, task, device=device))
            bar.update()
    return trace


def remove_stale_folds(folder: Path, sample_id: str, n_folds: int) -> list[Path]:
    """Fold files beyond this split's folds (from a run with more folds) would sit unexplained beside the new ones."""
    pattern = re.compile(rf"{re.escape(sample_id)}\.fold(\d+)\.predictions\.h5ad")
    stale = sorted(p for p in folder.glob(f"{sample_id}.fold*.predictions.h5ad")
                   if (m := pattern.fullmatch(p.name)) and int(m.group(1)) >= n_folds) if folder.is_dir() else []
    for path in stale:
        log.warning("removed %s: the split now has %d folds, so this fold file is from another configuration", path, n_folds)
        path.unlink()
    return stale


def _step_device(task: Task, device: str) -> str:
    """The device a step ran on: the model folder's record for train/impute, ``device`` (torch's) for diffusion folds, else the CPU."""
    from causalged.methods import MODEL_METHODS, parse_methods

    if task.step in ("train", "impute"):
        model_dir = step_module("train").outputs(task.kwargs["sample"], task.outdir)["model"] if task.step == "train" else Path(task.kwargs["model"])
        config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").is_file() else {}
        if "training" in config:
            return config["training"]["device"]
        return device if "device" in config.get("params", {}) else "cpu"
    if task.step == "crossval":
        return device if set(parse_methods(task.kwargs["methods"])) & set(MODEL_METHODS) else "cpu"
    return "cpu"


# --------------------------------------------------------------------------- resume
class ResumeLog:
    """``pipeline_info/resume.json``: per step, the hash it ran with and the digests of what it wrote."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.records = json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; every step runs again", path)
            self.records = {}

    def finished(self, key: str, digest: str) -> bool:
        """Whether the step finished with this hash and every file it wrote is still as it wrote it."""
        record = self.records.get(key, {})
        if record.get("finished") != digest:
            return False
        return all(Path(p).exists() and file_digest(p) == d for p, d in record["outputs"].items())

    def started(self, key: str, digest: str) -> bool:
        return self.records.get(key, {}).get("started") == digest

    def update(self, key: str, **fields) -> None:
        self.records[key] = {**self.records.get(key, {}), **fields}
        write_json_atomic(self.records, self.path)


#: Libraries whose version can change a step's numbers: a new one reruns the steps.
RESULT_LIBRARIES = ("numpy", "scipy", "scikit-learn", "anndata", "scanpy", "torch", "spatialdata-io", "spatialdata")


def step_parts(task: Task) -> dict[str, str]:
    """What determines a step's result, each part hashed apart so a rerun can say which changed:
    the package and library versions, the step's keyword values, the environment settings the
    steps read (``CAUSALGED_*``) and the bytes of every input file the table declares for the step."""
    import hashlib

    from causalged import __version__
    from causalged.formats import package_version

    def digest(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()

    kinds = {p.keyword: p.kind for p in spec.step_params(task.step)}
    record = {k: ([str(x) for x in v] if isinstance(v, (list, tuple)) else (str(v) if isinstance(v, Path) else v)) for k, v in task.kwargs.items()
              if k != "outdir"}
    inputs = hashlib.sha256()
    for key, value in task.kwargs.items():
        if kinds.get(key) in (spec.INPUT, spec.ARGUMENT) and value is not None:
            for path in map(Path, value if isinstance(value, (list, tuple)) else [value]):
                # a file's bytes, or a folder's (an instrument folder, the ablation's dataset) names and bytes
                inputs.update(file_digest(path).encode() if path.exists() else str(path).encode())
    return {"versions": digest([__version__, *(package_version(name) for name in RESULT_LIBRARIES)]),
            "parameters": digest([task.step, record]),
            "settings": digest({p.env: os.environ.get(p.env) for p in spec.PARAMS if p.env} | {k: v for k, v in os.environ.items() if k.startswith("CAUSALGED_") and k not in ("CAUSALGED_CPUS",)}),
            "inputs": inputs.hexdigest()}


def step_hash(task: Task, parts: dict[str, str] | None = None) -> str:
    """Identifies a step's work: one hash of :func:`step_parts`."""
    import hashlib

    return hashlib.sha256(json.dumps(parts or step_parts(task), sort_keys=True).encode()).hexdigest()


def why_again(record: dict, parts: dict[str, str]) -> str:
    """Why a step that finished before runs again, in words for the log."""
    if not record:
        return "it has not run in this folder before"
    changed = [name for name, value in parts.items() if record.get("parts", {}).get(name) != value]
    if changed:
        return f"its {', '.join(changed)} changed since it last finished"
    if record.get("finished") is None:
        return "it was interrupted"
    return "a file it wrote was changed or removed"


def _snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file() and not is_temporary(p)}


def _run_task(resume: ResumeLog, sample_id: str, task: Task, *, device: str) -> dict:
    """Run one step, or skip it when its record still matches; ``device`` is the one the model steps resolve to."""
    key, parts = f"{sample_id}/{task.name}", step_parts(task)
    digest = step_hash(task, parts)
    if resume.finished(key, digest):
        return _skipped(resume, sample_id, task, device=device)
    log.info("[%s] %s runs: %s", sample_id, task.name, why_again(resume.records.get(key, {}), parts))
    kwargs = dict(task.kwargs)
    if task.step == "train":
        checkpoints = step_module("train").outputs(sample_id, task.outdir)["model"] / "checkpoints"
        if resume.started(key, digest):
            kwargs["resume"] = True  # the same training was killed: continue from its checkpoint
            log.info("[%s] train: continuing the interrupted training from its checkpoint", sample_id)
        elif checkpoints.exists():
            shutil.rmtree(checkpoints)  # another configuration's: this training starts afresh, and a kill resumes from its own
    log.info("[%s] %s", sample_id, task.command)
    folder = task.outdir if "outdir" in task.kwargs else Path(task.kwargs["output"]).parent
    before = _snapshot(folder)
    resume.update(key, started=digest, finished=None, parts=parts)
    start = time.perf_counter()
    step_module(task.step).run(**kwargs)
    seconds = time.perf_counter() - start
    written = [p for p, stamp in _snapshot(folder).items() if before.get(p) != stamp]
    return _finished(resume, sample_id, task, digest, written, seconds, device=device)


def _skipped(resume: ResumeLog, sample_id: str, task: Task, *, device: str) -> dict:
    log.info("[%s] %s: unchanged since it finished, skipped", sample_id, task.name)
    previous = resume.records[f"{sample_id}/{task.name}"]
    return {"sample": sample_id, "step": task.name, "command": task.command, "seconds": 0.0,
            "device": previous.get("device", device), "skipped": True}


def _finished(resume: ResumeLog, sample_id: str, task: Task, digest: str, written: list[Path], seconds: float, *, device: str) -> dict:
    """Record a step that ran (its hash and the digests of what it wrote); its trace entry."""
    used = _step_device(task, device)
    resume.update(f"{sample_id}/{task.name}", finished=digest, outputs={str(p): file_digest(p) for p in written}, device=used)
    return {"sample": sample_id, "step": task.name, "command": task.command, "seconds": seconds, "device": used, "skipped": False}


# --------------------------------------------------------------------------- parallel folds
def _run_folds_in_parallel(resume: ResumeLog, sample_id: str, folds: list[Task], *, device: str, workers: int,
                           cpus: int | None, bar) -> list[dict]:
    """Cross-validation folds in ``workers`` processes, each with its share of the CPUs as threads.

    Folds are independent (each reads the hvg outputs and writes its own fold file), so they run
    as Nextflow runs them, as separate tasks; this process alone keeps the resume record, so a
    killed run continues the same way.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from causalged.threads import available_cpus, set_threads

    trace, pending = [], {}
    for task in folds:
        parts = step_parts(task)
        digest = step_hash(task, parts)
        if resume.finished(f"{sample_id}/{task.name}", digest):
            trace.append(_skipped(resume, sample_id, task, device=device))
            bar.update()
        else:
            log.info("[%s] %s runs: %s", sample_id, task.name, why_again(resume.records.get(f"{sample_id}/{task.name}", {}), parts))
            pending[task.name] = (task, digest)
            resume.update(f"{sample_id}/{task.name}", parts=parts)
    for name, (task, digest) in pending.items():
        resume.update(f"{sample_id}/{name}", started=digest, finished=None)
    threads = max(1, (cpus or available_cpus()) // workers)
    log.info("[%s] %d folds in %d worker processes, %d threads each", sample_id, len(pending), workers, threads)
    with ProcessPoolExecutor(min(workers, max(len(pending), 1)), mp_context=get_context("spawn"), initializer=set_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_timed_step, task.step, task.kwargs): name for name, (task, _) in pending.items()}
        for future in as_completed(futures):
            name = futures[future]
            task, digest = pending[name]
            seconds = future.result()  # a fold's error (one line, exit 2) stops the run here
            written = [p for p in step_module("crossval").outputs(sample_id, task.outdir, fold=task.kwargs["fold"]).values() if p.is_file()]
            trace.append(_finished(resume, sample_id, task, digest, written, seconds, device=device))
            bar.update()
    return sorted(trace, key=lambda t: int(t["step"].rsplit(" ", 1)[1]))


def _timed_step(step: str, kwargs: dict) -> float:
    """One step in a worker process; its wall time."""
    start = time.perf_counter()
    step_module(step).run(**kwargs)
    return time.perf_counter() - start
