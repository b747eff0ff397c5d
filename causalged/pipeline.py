"""The single-machine route: the Nextflow pipeline's steps, run in-process, same outputs.

Each step runs the very command line a Nextflow module runs (``causalged <step> ...``), so the
two routes cannot drift apart, and writes to the same layout: ``<outdir>/<sample>/<step>/``,
``<outdir>/pipeline_info/`` and ``<outdir>/multiqc/multiqc_report.html``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from causalged.io import write_json_atomic
from causalged.report import run_multiqc, software_versions, write_mqc_table
from causalged.samplesheet import Sample, read_samplesheet

log = logging.getLogger(__name__)


class StepFailed(RuntimeError):
    """A step exited with an error it has already reported."""


@dataclass
class RunParams:
    """Every parameter of a run, recorded in ``pipeline_info/params.json``."""

    method: str = "knn_ridge_blend"
    eval_methods: str = "knn_ridge_blend,knn,kernel_ridge,tangram,spot_depth,mean_map,causalged"
    preset: str = "cpu"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    n_folds: int = 10
    top_fraction: float = 0.25
    min_genes_cell: int = 500
    min_genes_spot: int = 1
    case_insensitive: bool = False
    n_samples: int = 8
    sampler: str = "ddim"
    steps: int = 50
    mode: str | None = None
    evaluate: bool = True


def run_pipeline(samplesheet: Path, outdir: Path, params: RunParams) -> Path:
    """Run every sample through the pipeline and return the MultiQC report path."""
    samples = read_samplesheet(samplesheet)
    outdir = Path(outdir)
    info = outdir / "pipeline_info"
    started = datetime.now(timezone.utc)
    write_json_atomic({"samplesheet": str(Path(samplesheet).resolve()), "started": started.isoformat(), **asdict(params)}, info / "params.json")
    trace = []
    for sample in samples:
        trace += run_sample(sample, outdir, params)
    write_json_atomic({"versions": software_versions(), "trace": trace, "finished": datetime.now(timezone.utc).isoformat()}, info / "execution_trace.json")
    import pandas as pd

    write_mqc_table(
        pd.DataFrame([{"Sample": f"{t['sample']} {t['step']}", "seconds": round(t["seconds"], 1)} for t in trace]),
        info / "steps_mqc.tsv", section_id="causalged_runtime", section_name="Step run times",
        description="Wall time of each step on this machine (single-machine route).",
    )
    return run_multiqc([outdir], outdir / "multiqc", title="CausalGeD")


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
              "--min-genes-cell", str(params.min_genes_cell), "--min-genes-spot", str(params.min_genes_spot)]
        if params.case_insensitive:
            qc.append("--case-insensitive")
        hvg = ["hvg", "--sample", s, "--sc", str(d["normalize"] / f"{s}.sc.norm.h5ad"), "--st", str(d["normalize"] / f"{s}.st.norm.h5ad"),
               "--outdir", str(d["hvg"]), "--top-fraction", str(params.top_fraction), "--n-folds", str(params.n_folds), "--seed", str(params.seed)]
        if sample.genes:
            hvg += ["--genes", str(sample.genes)]
        return [
            ("qc", qc),
            ("normalize", ["normalize", "--sample", s, "--sc", str(d["qc"] / f"{s}.sc.qc.h5ad"), "--st", str(d["qc"] / f"{s}.st.qc.h5ad"), "--outdir", str(d["normalize"])]),
            ("hvg", hvg),
        ]
    commands = []
    trust = []
    if params.evaluate:
        # the production method is always cross-validated, so its imputed genes get an expected accuracy
        methods = ",".join(dict.fromkeys([params.method, *params.eval_methods.split(",")]))
        commands += [(f"crossval fold {k}", ["crossval", *inputs, *split, "--fold", str(k), "--methods", methods, *model_opts, *sampling_opts, "--outdir", str(d["crossval"])])
                     for k in range(n_folds)]
        predictions = [str(d["crossval"] / f"{s}.fold{k}.predictions.h5ad") for k in range(n_folds)]
        commands.append(("evaluate", ["evaluate", *inputs, *split, "--outdir", str(d["evaluate"]), *predictions]))
        trust = ["--trust", str(d["evaluate"] / f"{s}.gene_trust.csv")]
    commands += [
        ("train", ["train", *inputs, *split, "--outdir", str(d["train"]), "--method", params.method, *model_opts]),
        ("impute", ["impute", *inputs, "--model", str(d["train"] / f"{s}.model"), "--outdir", str(d["impute"]),
                    "--n-samples", str(params.n_samples), "--seed", str(params.seed), *sampling_opts, *trust]),
    ]
    return commands


def run_sample(sample: Sample, outdir: Path, params: RunParams) -> list[dict]:
    import json

    trace = []
    preprocessing = sample_commands(sample, outdir, params)
    with tqdm(total=len(preprocessing), desc=f"{sample.id}", unit="step") as bar:
        for name, args in preprocessing:
            trace.append(_run_command(sample.id, name, args))
            bar.update()
        split = json.loads((outdir / sample.id / "hvg" / f"{sample.id}.split.json").read_text())
        rest = sample_commands(sample, outdir, params, n_folds=split["n_folds"])
        bar.total += len(rest)
        for name, args in rest:
            trace.append(_run_command(sample.id, name, args))
            bar.update()
    return trace


def _run_command(sample_id: str, name: str, args: list[str]) -> dict:
    from causalged.cli import cli

    log.info("[%s] causalged %s", sample_id, " ".join(args))
    start = time.perf_counter()
    exit_code = cli.main(args=args, prog_name="causalged", standalone_mode=False)
    if isinstance(exit_code, int) and exit_code != 0:
        raise StepFailed(f"step '{name}' of sample {sample_id} failed (exit {exit_code}); its message is above")
    return {"sample": sample_id, "step": name, "command": "causalged " + " ".join(args), "seconds": time.perf_counter() - start}
