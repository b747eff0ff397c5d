"""The ``causalged`` command line: one command per step, each built from the parameter table.

Every command's options come from :mod:`causalged.params` and its callback calls the step's
function (:mod:`causalged.steps`) with exactly those keywords, so the command line, ``causalged
run`` and the Python API cannot drift apart. Bad input is reported as one line (exit code 2).
The ``bin/causalged-<step>`` scripts that Nextflow calls run the same commands.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from causalged import __version__
from causalged.errors import InputError, os_error
from causalged.params import BY_NAME, click_params

#: Each command's help (its first line is the summary in `causalged --help`).
HELP = {
    "simulate": "Generate paired demo data (scRNA-seq + ST) with a known regulatory network.\n\nThe size options give atlas-size pairs "
                "(e.g. --n-cells 1000000 --n-spots 100000 --n-genes 20000 --panel-fraction 0.25 --base-mean -4.5) in time linear in "
                "cells x genes, sparse throughout; the reference is written a block of cells at a time, never held whole.",
    "validate_samplesheet": "Check a samplesheet against assets/schema_input.json and across rows.",
    "import": "Import: read the inputs as they come (instrument folders, SpatialData, CELLxGENE, Cell Ranger, loom) into the "
              "internal pair.\n\nWrites <sample>.sc.h5ad and <sample>.st.h5ad (raw counts in X, ST positions in obsm['spatial']) "
              "and records the reader, its version, the files' checksums and the gene-id mapping.",
    "qc": "QC: drop low-quality cells and spots, and genes detected nowhere.",
    "normalize": "Normalize: log1p(counts / total * median total), raw counts kept in layers['counts'].",
    "hvg": "Select genes (HVG + ST panel + requested) and write the seeded gene split.",
    "train": "Train the imputation model on the split's genes: <sample>.model/.",
    "impute": "Impute the target genes at every spot: <sample>.imputed.h5ad (mean + per-spot std).",
    "crossval": "Held-out-gene cross-validation, one fold: <sample>.fold<K>.predictions.h5ad.\n\nThe fold's genes are removed from the "
                "ST input (re-normalized from the training genes' raw counts) and predicted from their scRNA-seq vectors by every method.",
    "evaluate": "Score cross-validated predictions: metrics.csv, held-out predictions, trust, figures.",
    "causality": "Directed gene pairs: spatial Granger-style F-test and causal linearization (docs/causality.md).",
    "ablate": "The paper's ablation claims under the held-out protocol, one axis at a time, on each DATASET.\n\nDATASET: a folder with "
              "raw-count sc.h5ad + st.h5ad, or `demo`. Writes the page (verdict per claim), the per-gene CSV beside it and one figure per axis.",
    "report": "Aggregate every sample's outputs into one MultiQC report (<outdir>/multiqc/).",
    "benchmark": "Run every method on each DATASET folder (sc.h5ad + st.h5ad of raw counts) or `demo`.\n\nWrites a markdown page with "
                 "mean ± SD of PCC/SSIM/RMSE/JS, the AS, wall time, machine and versions, and for osmFISH the published "
                 "SpatialBenchmarking numbers, labelled as such.",
    "run": "Run the whole pipeline on this machine (no Nextflow), ending with the MultiQC report.\n\nEverything is checked before the "
           "first step; a step whose inputs and parameters are unchanged since it last finished (pipeline_info/resume.json) is "
           "skipped, so the same command continues a killed run.",
}


class CausalGeDGroup(click.Group):
    """Turns :class:`InputError` and OS errors (disk full, read-only) into one line and exit code 2.

    ``causalged --debug ...`` shows the traceback instead.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (InputError, OSError) as err:
            if ctx.params.get("debug"):
                raise
            click.secho(f"Error: {err if isinstance(err, InputError) else os_error(err)}", err=True, fg="red")
            ctx.exit(2)


@click.group(cls=CausalGeDGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="causalged")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error instead of its one-line message.")
@click.option("--cpus", type=click.IntRange(min=1), default=None,
              help="Threads of BLAS and torch [default: $CAUSALGED_CPUS, else $OMP_NUM_THREADS, else the cores this process may use].")
def cli(verbose: int, quiet: bool, debug: bool, cpus: int | None) -> None:
    """CausalGeD: impute the genes your spatial panel did not measure, from a scRNA-seq reference.

    Steps, in pipeline order: simulate | validate-samplesheet | import | qc | normalize | hvg | train |
    impute | crossval | evaluate | report (causality, ablate: optional). `causalged run` chains them on one machine.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("numba", "h5py", "matplotlib", "PIL", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if cpus or os.environ.get("CAUSALGED_CPUS") or os.environ.get("OMP_NUM_THREADS"):
        from causalged.threads import set_threads

        set_threads(cpus)


def _given(ctx: click.Context, command: str, positional: str) -> str:
    """The command as typed (options given on the command line only), recorded on the pages it writes."""
    given = [f"{BY_NAME[k].flag}" + ("" if v is True else f" {v}") for k, v in ctx.params.items()
             if k != positional and ctx.get_parameter_source(k).name == "COMMANDLINE"]
    return " ".join([f"causalged {command}", *ctx.params.get(positional, ()), *given])


def _echo(result) -> None:
    if isinstance(result, dict):
        for key, path in result.items():
            click.echo(f"{key}\t{path}")
    elif result is not None:
        click.echo(str(result))


def _step_command(step: str) -> click.Command:
    """``causalged <step>``: the table's options, and a callback that hands them to the step's function."""

    def callback(**values):
        from causalged.steps import step_module

        kwargs = {BY_NAME[name].keyword: value for name, value in values.items()}
        if step == "ablate":
            kwargs["command"] = _given(click.get_current_context(), "ablate", "datasets")
        _echo(step_module(step).run(**kwargs))

    return click.Command(step.replace("_", "-"), params=click_params(step), callback=callback, help=HELP[step])


def _benchmark(**values) -> None:
    from causalged.methods import parse_methods
    from causalged.research.benchmark import run_benchmark
    from causalged.steps.crossval import model_overrides

    v = {BY_NAME[name].keyword: value for name, value in values.items()}
    path = run_benchmark(list(v["datasets"]), output=v["output"], seeds=[int(s) for s in v["seeds"].split(",") if s.strip()],
                         methods=parse_methods(v["methods"]), slow_seeds=v["slow_seeds"], model_seeds=v["model_seeds"], jobs=v["jobs"],
                         n_folds=v["n_folds"], n_samples=v["n_samples"], preset=v["preset"], device=v["device"],
                         overrides=model_overrides(v["epochs"]) if v["epochs"] else None,  # None: every method at its defaults
                         command=_given(click.get_current_context(), "benchmark", "datasets"), design_split=v["design_split"])
    click.echo(str(path))


def _run(**values) -> None:
    from causalged.pipeline import run_pipeline

    ctx = click.get_current_context()
    if values["demo"] == bool(values["input"]):
        raise click.UsageError("give exactly one of --input SAMPLESHEET or --demo")
    if values["demo"] and ctx.get_parameter_source("n_folds").name == "DEFAULT":
        values["n_folds"] = 5  # the demo finishes in minutes on 2 cores
    report_path = run_pipeline(values, cpus=ctx.find_root().params.get("cpus"))
    click.echo(f"MultiQC report: {report_path}")


for _name in ("simulate", "validate_samplesheet", "import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality", "report",
              "ablate"):
    cli.add_command(_step_command(_name))
cli.add_command(click.Command("benchmark", params=click_params("benchmark"), callback=_benchmark, help=HELP["benchmark"]))
cli.add_command(click.Command("run", params=click_params("run"), callback=_run, help=HELP["run"]))


def main() -> None:
    cli(prog_name="causalged")


def run_step(step: str) -> None:
    """Entry point of the ``bin/causalged-<step>`` scripts: the same command, its own name."""
    cli(args=[step, *sys.argv[1:]], prog_name=f"causalged-{step}")


if __name__ == "__main__":
    main()
