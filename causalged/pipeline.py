"""The single-machine route: the Nextflow pipeline's steps, run in-process, same outputs.

Each step runs the very command line a Nextflow module runs (``causalged <step> ...``), so the
two routes cannot drift apart, and writes to the same layout: ``<outdir>/<sample>/<step>/``,
``<outdir>/pipeline_info/`` and ``<outdir>/multiqc/multiqc_report.html``.

Reliability: everything that can be checked is checked before the first step (parameters,
device, output folder, every input), so bad input fails in seconds with nothing written. A
step's errors reach the CLI's one handler (one line, exit 2). ``pipeline_info/resume.json``
records, per step, a hash of its command line and input files and the digests of the files it
wrote; a step whose record still matches is skipped, so the same command continues a killed run.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from causalged.errors import InputError
from causalged.io import check_writable, ensure_not_input, file_digest, is_temporary, remove_stale_temporaries, write_json_atomic
from causalged.methods import DEFAULT_EVAL_METHODS
from causalged.report import run_multiqc, software_versions, write_mqc_table
from causalged.samplesheet import Sample, read_samplesheet

log = logging.getLogger(__name__)

#: Free space asked of the output disk, as a multiple of the inputs' size (qc, normalize and hvg
#: each write a copy of both matrices, normalize with the counts beside the log values).
SPACE_FACTOR = 6


@dataclass
class RunParams:
    """Every parameter of a run, recorded in ``pipeline_info/params.json``."""

    method: str = "knn_ridge_blend"
    eval_methods: str = DEFAULT_EVAL_METHODS  # "full" adds tangram and causalged (methods.METHOD_SETS)
    preset: str = "cpu"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    n_folds: int = 10
    top_fraction: float = 0.25
    min_genes_cell: int = 500
    min_genes_spot: int = 1
    min_cells_gene: int = 1
    scale_min_genes: bool = True
    already_normalized: bool = False
    case_insensitive: bool = False
    n_samples: int = 8
    sampler: str = "ddim"
    steps: int = 50
    mode: str | None = None
    evaluate: bool = True
    demo: bool = False
    workers: int = 1
    cpus: int | None = None


def run_pipeline(samplesheet: Path | None, outdir: Path, params: RunParams) -> Path:
    """Check everything, run (or skip, when unchanged) every step of every sample; return the MultiQC report path."""
    outdir = Path(outdir)
    device = str(check_run_params(params))
    check_writable(outdir)
    resume = ResumeLog(outdir / "pipeline_info" / "resume.json")
    trace = []
    if params.demo:  # our own data, regenerated only when the seed changed
        demo = outdir / "demo_data"
        trace.append(_run_step(resume, "demo", "simulate", ["simulate", "--outdir", str(demo), "--name", "demo", "--size", "demo",
                                                             "--seed", str(params.seed)], device=device))
        samplesheet = demo / "samplesheet.csv"
    samples = read_samplesheet(samplesheet)
    check_inputs(samples, Path(samplesheet), outdir, params)
    outdir.mkdir(parents=True, exist_ok=True)
    for folder in [outdir / s.id for s in samples] + [outdir / "pipeline_info", outdir / "multiqc", outdir / "demo_data"]:
        for stale in remove_stale_temporaries(folder):
            log.warning("removed %s, a temporary file left by a killed write", stale)
    info = outdir / "pipeline_info"
    started = datetime.now(timezone.utc)
    write_json_atomic({"samplesheet": str(Path(samplesheet).resolve()), "started": started.isoformat(), **asdict(params),
                       "device_used": device}, info / "params.json")
    for sample in samples:
        trace += run_sample(sample, outdir, params, resume, device=device)
    write_json_atomic({"versions": software_versions(), "trace": trace, "finished": datetime.now(timezone.utc).isoformat()}, info / "execution_trace.json")
    import pandas as pd

    write_mqc_table(
        pd.DataFrame([{"Sample": f"{t['sample']} {t['step']}", "seconds": round(t["seconds"], 1), "device": t["device"],
                       "skipped (unchanged)": t["skipped"]} for t in trace]),
        info / "steps_mqc.tsv", section_id="causalged_runtime", section_name="Step run times",
        description="Wall time and device of each step on this machine (single-machine route); skipped steps were unchanged since they last finished.",
    )
    return run_multiqc([outdir], outdir / "multiqc", title="CausalGeD")


# --------------------------------------------------------------------------- checks before any step
def check_run_params(params: RunParams):
    """Methods, fractions and the device; returns the torch device the model steps will use."""
    from causalged.evaluation.evaluate import parse_methods
    from causalged.model.training import resolve_device

    parse_methods([params.method])
    if params.evaluate:
        parse_methods(params.eval_methods)
    if not 0 < params.top_fraction <= 1:
        raise InputError(None, f"--top-fraction must be in (0, 1], got {params.top_fraction}", "pass a fraction such as 0.25")
    if params.n_folds < 2:
        raise InputError(None, f"--n-folds must be at least 2, got {params.n_folds}", "pass --n-folds 2 or more")
    return resolve_device(params.device)  # --device cuda without a GPU: an error here, before any work


def check_inputs(samples: list[Sample], samplesheet: Path, outdir: Path, params: RunParams) -> None:
    """Every sample's inputs are read and checked as the steps will need them, and none is in harm's way."""
    from causalged import preprocess
    from causalged.io import read_gene_list, read_h5ad
    from causalged.stream import BackedReference, read_reference

    owned = [outdir / s.id for s in samples] + [outdir / "pipeline_info", outdir / "multiqc"]
    inputs = [samplesheet, *(p for s in samples for p in (s.sc, s.st, s.genes) if p is not None)]
    for path in inputs:
        for folder in owned:
            if Path(path).resolve().is_relative_to(folder.resolve()):
                raise InputError(path, f"this input lies inside {folder}, a folder `causalged run` writes and cleans", "choose another --outdir")
    for name in ("params.json", "execution_trace.json", "resume.json"):
        ensure_not_input(outdir / "pipeline_info" / name, inputs)
    needed = SPACE_FACTOR * sum(Path(p).stat().st_size for p in inputs)
    free = shutil.disk_usage(next(p for p in (outdir, *outdir.absolute().parents) if p.exists())).free
    if free < needed:
        raise InputError(outdir, f"only {free / 1e6:.0f} MB are free on this disk; the run needs about {needed / 1e6:.0f} MB "
                                 f"({SPACE_FACTOR} x the inputs)", "free disk space, or choose an --outdir on a disk with room")
    for sample in samples:
        st_data = read_h5ad(sample.st, role="st")
        with read_reference(sample.sc) as sc_data:
            # a reference on disk has its values checked as the qc and normalize steps read its blocks
            matrices = [(st_data, sample.st)] + ([] if isinstance(sc_data, BackedReference) else [(sc_data, sample.sc)])
            if not params.already_normalized:
                for data, path in matrices:
                    if not preprocess.is_integer_matrix(data.X):
                        raise InputError(path, "the matrix holds non-integer values, so it looks normalized already; normalizing it again would distort it",
                                         "provide raw counts, or pass --already-normalized to `causalged run` if these are log-normalized values")
            shared = preprocess.match_genes(sc_data, st_data, case_insensitive=params.case_insensitive, st_path=sample.st)
        # QC can only lower this count; the hvg step checks again on what QC kept
        preprocess.make_gene_splits(shared, n_folds=params.n_folds, seed=params.seed, path=sample.st)
        if sample.genes:
            read_gene_list(sample.genes)


# --------------------------------------------------------------------------- commands
def sample_commands(sample: Sample, outdir: Path, params: RunParams, n_folds: int | None = None) -> list[tuple[str, list[str]]]:
    """The command lines, in order, that process one sample (as the Nextflow modules run them).

    Without ``n_folds`` (not known before the hvg step has written the split) the list stops
    after hvg; with it, it goes on with the evaluation branch (one crossval per fold, then
    evaluate) and ends with train -> impute, whose genes then carry the evaluation's trust.
    """
    s = sample.id
    d = {step: outdir / s / step for step in ("qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate")}
    inputs = ["--sample", s, "--sc", str(d["hvg"] / f"{s}.sc.hvg.h5ad"), "--st", str(d["hvg"] / f"{s}.st.hvg.h5ad")]
    split = ["--split", str(d["hvg"] / f"{s}.split.json")]
    model_opts = ["--preset", params.preset, "--device", params.device, "--seed", str(params.seed)]
    if params.epochs:
        model_opts += ["--epochs", str(params.epochs)]
    # cross-validation samples the diffusion models as impute will, so its scores are the production ones
    sampling_opts = ["--sampler", params.sampler, "--steps", str(params.steps), *(["--mode", params.mode] if params.mode else [])]
    if n_folds is None:
        qc = ["qc", "--sample", s, "--sc", str(sample.sc), "--st", str(sample.st), "--outdir", str(d["qc"]),
              "--min-genes-cell", str(params.min_genes_cell), "--min-genes-spot", str(params.min_genes_spot),
              "--min-cells-gene", str(params.min_cells_gene)]
        if not params.scale_min_genes:
            qc.append("--no-scale-min-genes")
        if params.case_insensitive:
            qc.append("--case-insensitive")
        normalize = ["normalize", "--sample", s, "--sc", str(d["qc"] / f"{s}.sc.qc.h5ad"), "--st", str(d["qc"] / f"{s}.st.qc.h5ad"), "--outdir", str(d["normalize"])]
        if params.already_normalized:
            normalize.append("--already-normalized")
        hvg = ["hvg", "--sample", s, "--sc", str(d["normalize"] / f"{s}.sc.norm.h5ad"), "--st", str(d["normalize"] / f"{s}.st.norm.h5ad"),
               "--outdir", str(d["hvg"]), "--top-fraction", str(params.top_fraction), "--n-folds", str(params.n_folds), "--seed", str(params.seed)]
        if sample.genes:
            hvg += ["--genes", str(sample.genes)]
        return [("qc", qc), ("normalize", normalize), ("hvg", hvg)]
    commands = []
    trust = []
    if params.evaluate:
        # the production method is always cross-validated, so its imputed genes get an expected accuracy
        from causalged.evaluation.evaluate import parse_methods

        methods = ",".join(dict.fromkeys([params.method, *parse_methods(params.eval_methods)]))
        commands += [(f"crossval fold {k}", ["crossval", *inputs, *split, "--fold", str(k), "--methods", methods, *model_opts, *sampling_opts, "--outdir", str(d["crossval"])])
                     for k in range(n_folds)]
        predictions = [str(d["crossval"] / f"{s}.fold{k}.predictions.h5ad") for k in range(n_folds)]
        commands.append(("evaluate", ["evaluate", *inputs, *split, "--outdir", str(d["evaluate"]), *predictions]))
        trust = ["--trust", str(d["evaluate"] / f"{s}.gene_trust.csv")]
    commands += [
        ("train", ["train", *inputs, *split, "--outdir", str(d["train"]), "--method", params.method, *model_opts]),
        ("impute", ["impute", *inputs, "--model", str(d["train"] / f"{s}.model"), "--outdir", str(d["impute"]),
                    "--n-samples", str(params.n_samples), "--seed", str(params.seed), "--device", params.device, *sampling_opts, *trust]),
    ]
    return commands


def run_sample(sample: Sample, outdir: Path, params: RunParams, resume: "ResumeLog", *, device: str) -> list[dict]:
    trace = []
    preprocessing = sample_commands(sample, outdir, params)
    with tqdm(total=len(preprocessing), desc=f"{sample.id}", unit="step") as bar:
        for name, args in preprocessing:
            trace.append(_run_step(resume, sample.id, name, args, device=device))
            bar.update()
        split = json.loads((outdir / sample.id / "hvg" / f"{sample.id}.split.json").read_text())
        remove_stale_folds(outdir / sample.id / "crossval", sample.id, split["n_folds"])
        rest = sample_commands(sample, outdir, params, n_folds=split["n_folds"])
        bar.total += len(rest)
        folds = [(name, args) for name, args in rest if name.startswith("crossval fold")]
        if params.workers > 1 and len(folds) > 1:
            trace += _run_folds_in_parallel(resume, sample.id, folds, device=device, workers=params.workers, cpus=params.cpus, bar=bar)
            rest = [step for step in rest if step not in folds]
        for name, args in rest:
            trace.append(_run_step(resume, sample.id, name, args, device=device))
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


def _step_device(name: str, args: list[str], device: str) -> str:
    """The device a step ran on: the model folder's record for train/impute, ``device`` (torch's) for diffusion folds, else the CPU."""
    from causalged.methods import MODEL_METHODS

    if name in ("train", "impute"):
        model_dir = Path(args[args.index("--outdir") + 1]) / f"{args[args.index('--sample') + 1]}.model" if name == "train" else Path(args[args.index("--model") + 1])
        config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").is_file() else {}
        if "training" in config:
            return config["training"]["device"]
        return device if "device" in config.get("params", {}) else "cpu"
    if name.startswith("crossval"):
        return device if set(args[args.index("--methods") + 1].split(",")) & set(MODEL_METHODS) else "cpu"
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


def step_hash(args: list[str]) -> str:
    """Identifies a step's work: the package version, the command line and the bytes of every input it names."""
    import hashlib

    from causalged import __version__

    digest = hashlib.sha256(json.dumps([__version__, *args]).encode())
    for previous, token in zip(["", *args], args):
        if previous != "--outdir" and not token.startswith("-") and Path(token).exists():
            digest.update(file_digest(token).encode())
    return digest.hexdigest()


def _snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file() and not is_temporary(p)}


def _run_step(resume: ResumeLog, sample_id: str, name: str, args: list[str], *, device: str) -> dict:
    """Run one step, or skip it when its record still matches; ``device`` is the one the model steps resolve to."""
    from causalged.cli import invoke_step

    key, digest = f"{sample_id}/{name}", step_hash(args)
    if resume.finished(key, digest):
        return _skipped(resume, sample_id, name, args, device=device)
    out = Path(args[args.index("--outdir") + 1])
    if name == "train":
        checkpoints = out / f"{sample_id}.model" / "checkpoints"
        if resume.started(key, digest):
            args = [*args, "--resume"]  # the same training was killed: continue from its checkpoint
            log.info("[%s] train: continuing the interrupted training from its checkpoint", sample_id)
        elif checkpoints.exists():
            shutil.rmtree(checkpoints)  # another configuration's: this training starts afresh, and a kill resumes from its own
    log.info("[%s] %s", sample_id, " ".join(args))
    before = _snapshot(out)
    resume.update(key, started=digest, finished=None)
    start = time.perf_counter()
    invoke_step(args)
    seconds = time.perf_counter() - start
    written = [p for p, stamp in _snapshot(out).items() if before.get(p) != stamp]
    return _finished(resume, sample_id, name, args, digest, written, seconds, device=device)


def _skipped(resume: ResumeLog, sample_id: str, name: str, args: list[str], *, device: str) -> dict:
    log.info("[%s] %s: unchanged since it finished, skipped", sample_id, name)
    previous = resume.records[f"{sample_id}/{name}"]
    return {"sample": sample_id, "step": name, "command": "causalged " + " ".join(args), "seconds": 0.0,
            "device": previous.get("device", device), "skipped": True}


def _finished(resume: ResumeLog, sample_id: str, name: str, args: list[str], digest: str, written: list[Path], seconds: float, *,
              device: str) -> dict:
    """Record a step that ran (its hash and the digests of what it wrote); its trace entry."""
    used = _step_device(name, args, device)
    resume.update(f"{sample_id}/{name}", finished=digest, outputs={str(p): file_digest(p) for p in written}, device=used)
    return {"sample": sample_id, "step": name, "command": "causalged " + " ".join(args), "seconds": seconds, "device": used, "skipped": False}


# --------------------------------------------------------------------------- parallel folds
def _run_folds_in_parallel(resume: ResumeLog, sample_id: str, folds: list[tuple[str, list[str]]], *, device: str, workers: int,
                           cpus: int | None, bar) -> list[dict]:
    """Cross-validation folds in ``workers`` processes, each with its share of the CPUs as threads.

    Folds are independent (each reads the hvg outputs and writes its own
    ``<sample>.fold<K>.predictions.h5ad``), so they run as Nextflow runs them, as separate
    tasks; this process alone keeps the resume record, so a killed run continues the same way.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from causalged.threads import available_cpus, set_threads

    trace, pending = [], {}
    for name, args in folds:
        digest = step_hash(args)
        if resume.finished(f"{sample_id}/{name}", digest):
            trace.append(_skipped(resume, sample_id, name, args, device=device))
            bar.update()
        else:
            pending[name] = (args, digest)
    for name, (args, digest) in pending.items():
        resume.update(f"{sample_id}/{name}", started=digest, finished=None)
    threads = max(1, (cpus or available_cpus()) // workers)
    log.info("[%s] %d folds in %d worker processes, %d threads each", sample_id, len(pending), workers, threads)
    with ProcessPoolExecutor(min(workers, max(len(pending), 1)), mp_context=get_context("spawn"), initializer=set_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_timed_step, args): name for name, (args, _) in pending.items()}
        for future in as_completed(futures):
            name = futures[future]
            args, digest = pending[name]
            seconds = future.result()  # a fold's error (one line, exit 2) stops the run here
            fold = args[args.index("--fold") + 1]
            out = Path(args[args.index("--outdir") + 1])
            written = [p for p in out.glob(f"{sample_id}.fold{fold}.*") if p.is_file() and not is_temporary(p)]
            trace.append(_finished(resume, sample_id, name, args, digest, written, seconds, device=device))
            bar.update()
    return sorted(trace, key=lambda t: int(t["step"].rsplit(" ", 1)[1]))


def _timed_step(args: list[str]) -> float:
    """One step in a worker process; its wall time."""
    from causalged.cli import invoke_step

    start = time.perf_counter()
    invoke_step(args)
    return time.perf_counter() - start
