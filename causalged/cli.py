"""The ``causalged`` command group: one subcommand per pipeline step.

Commands stay thin: parse options, call the package, report bad input as one clear line.
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

SAMPLE = click.option("--sample", required=True, help="Sample id; prefixes every output file.")
OUTDIR = click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Folder for the outputs (created if missing).")
EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


class CausalGeDGroup(click.Group):
    """Turns :class:`InputError` and OS errors (disk full, read-only) into one line and exit code 2.

    ``causalged --debug ...`` shows the traceback instead. ``causalged run`` calls the steps
    through :func:`invoke_step`, so their errors reach this one handler too.
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

    Steps, in pipeline order: simulate | validate-samplesheet | qc | normalize | hvg | train |
    impute | crossval | evaluate | report (causality: optional). `causalged run` chains them on one machine.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("numba", "h5py", "matplotlib", "PIL", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if cpus or os.environ.get("CAUSALGED_CPUS") or os.environ.get("OMP_NUM_THREADS"):
        from causalged.threads import set_threads

        set_threads(cpus)


@cli.command()
@OUTDIR
@click.option("--name", default="demo", show_default=True, help="File prefix and sample id of the generated data.")
@click.option("--size", type=click.Choice(["tiny", "demo"]), default="demo", show_default=True, help="tiny: unit-test size (<1 MB); demo: the README demo.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--grn", type=click.Choice(["cell", "spatial"]), default="cell", show_default=True,
              help="Where the network acts: within cells, or through neighbouring spots (a spatial trace, for `causalged causality`).")
@click.option("--n-cells", type=int, default=None, help="Reference cells instead of the --size preset's (any size option: the chunked sparse generator).")
@click.option("--n-spots", type=int, default=None, help="ST spots, on a near-square lattice (rounded up to fill its last row).")
@click.option("--n-genes", type=int, default=None, help="Reference genes (the ST panel measures --panel-fraction of them).")
@click.option("--panel-fraction", type=float, default=None, help="Share of the reference genes in the ST panel, in (0, 1).")
@click.option("--base-mean", type=float, default=None,
              help="Genes' mean baseline log-rate for the chunked generator (default -3.0, about 21 %% of reference entries non-zero; "
                   "-4.5 gives droplet-atlas sparsity, about 8 %%).")
def simulate(outdir: Path, name: str, size: str, seed: int, grn: str, n_cells, n_spots, n_genes, panel_fraction, base_mean) -> None:
    """Generate paired demo data (scRNA-seq + ST) with a known regulatory network.

    The size options give atlas-size pairs (e.g. --n-cells 1000000 --n-spots 100000 --n-genes
    20000 --panel-fraction 0.25 --base-mean -4.5) in time linear in cells x genes, sparse
    throughout; the reference is written a block of cells at a time, never held whole.
    """
    from causalged.simulate import write_demo

    paths = write_demo(outdir, name=name, size=size, seed=seed, grn=grn, n_cells=n_cells, n_spots=n_spots, n_genes=n_genes,
                       panel_fraction=panel_fraction, base_mean=base_mean)
    for key, path in paths.items():
        click.echo(f"{key}\t{path}")


@cli.command("validate-samplesheet")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Samplesheet CSV.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the validated sheet (absolute paths) here.")
def validate_samplesheet(input_path: Path, output: Path | None) -> None:
    """Check a samplesheet against assets/schema_input.json and across rows."""
    import pandas as pd

    from causalged.io import ensure_not_input, write_csv_atomic
    from causalged.samplesheet import read_samplesheet

    samples = read_samplesheet(input_path)
    if output:
        ensure_not_input(output, [input_path, *(p for s in samples for p in (s.sc, s.st, s.genes))])
        rows = [{"sample": s.id, "sc": s.sc.resolve(), "st": s.st.resolve(), "genes": s.genes.resolve() if s.genes else "", "platform": s.platform or ""} for s in samples]
        write_csv_atomic(pd.DataFrame(rows), output, index=False)
    click.echo(f"{input_path}: {len(samples)} sample(s) OK: {', '.join(s.id for s in samples)}")


@cli.command()
@SAMPLE
@click.option("--sc", "sc_path", required=True, type=click.Path(path_type=Path), help="scRNA-seq reference, raw counts (.h5ad).")
@click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="Spatial data, raw counts, coordinates in obsm['spatial'] or obs x/y (.h5ad).")
@OUTDIR
@click.option("--min-genes-cell", type=int, default=500, show_default=True, help="Drop cells with fewer detected genes (scaled down for small references, see --scale-min-genes).")
@click.option("--min-genes-spot", type=int, default=1, show_default=True, help="Drop spots with fewer detected genes.")
@click.option("--min-cells-gene", type=int, default=1, show_default=True, help="Drop genes detected in fewer observations.")
@click.option("--scale-min-genes/--no-scale-min-genes", default=True, show_default=True, help="Scale --min-genes-cell to the reference's gene count (500 assumes a whole transcriptome).")
@click.option("--case-insensitive", is_flag=True, help="Match gene names ignoring capitalisation (Gad1 vs GAD1).")
def qc(sample, sc_path, st_path, outdir, min_genes_cell, min_genes_spot, min_cells_gene, scale_min_genes, case_insensitive) -> None:
    """QC: drop low-quality cells and spots, and genes detected nowhere."""
    from causalged.steps import run_qc

    run_qc(sample, sc_path, st_path, outdir, min_genes_cell=min_genes_cell, min_genes_spot=min_genes_spot,
           min_cells_gene=min_cells_gene, scale_min_genes=scale_min_genes, case_insensitive=case_insensitive)


@cli.command()
@SAMPLE
@click.option("--sc", "sc_path", required=True, type=click.Path(path_type=Path), help="QC'd scRNA-seq (.h5ad).")
@click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="QC'd spatial data (.h5ad).")
@OUTDIR
@click.option("--already-normalized", is_flag=True, help="Inputs are log-normalized already: use them as they are.")
def normalize(sample, sc_path, st_path, outdir, already_normalized) -> None:
    """Normalize: log1p(counts / total * median total), raw counts kept in layers['counts']."""
    from causalged.steps import run_normalize

    run_normalize(sample, sc_path, st_path, outdir, already_normalized=already_normalized)


@cli.command()
@SAMPLE
@click.option("--sc", "sc_path", required=True, type=click.Path(path_type=Path), help="Normalized scRNA-seq (.h5ad).")
@click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="Normalized spatial data (.h5ad).")
@OUTDIR
@click.option("--genes", type=click.Path(path_type=Path), default=None, help="Text file of genes to impute (one per line), kept whatever their variability.")
@click.option("--top-fraction", type=float, default=0.25, show_default=True, help="Fraction of reference genes kept as highly variable.")
@click.option("--n-folds", type=int, default=10, show_default=True, help="Cross-validation folds over the shared genes (capped at their number).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the gene split and folds.")
def hvg(sample, sc_path, st_path, outdir, genes, top_fraction, n_folds, seed) -> None:
    """Select genes (HVG + ST panel + requested) and write the seeded gene split."""
    from causalged.steps import run_hvg

    run_hvg(sample, sc_path, st_path, outdir, genes=genes, top_fraction=top_fraction, n_folds=n_folds, seed=seed)


@cli.command()
@SAMPLE
@click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="Normalized spatial data with coordinates (.h5ad).")
@click.option("--sc", "sc_path", type=click.Path(path_type=Path), default=None, help="Normalized scRNA-seq reference (.h5ad); needed by linear_ridge and knn_cells.")
@OUTDIR
@click.option("--methods", default=",".join(("granger", "linear_ridge", "knn_cells")), show_default=True,
              help="Comma-separated: granger (spatial F-test), linear_ridge, knn_cells (causal linearization of a model).")
@click.option("--max-genes", type=int, default=100, show_default=True, help="Keep the most variable panel genes; the pair count is quadratic, G (G - 1).")
@click.option("--n-neighbors", type=int, default=8, show_default=True, help="The spatial lag: mean over this many nearest other spots.")
@click.option("--radius", type=float, default=None, help="Instead of --n-neighbors: mean over every other spot within this distance.")
@click.option("--covariates", default=None, help="obsm key or comma-separated obs columns added to both Granger models (e.g. cell_type_fractions).")
@click.option("--threshold", type=float, default=0.1, show_default=True, help="Linearization: |W| (per unit of the target's own decay) called an edge.")
@click.option("--n-top", type=int, default=20, show_default=True, help="Pairs in the MultiQC table and edges in the network plot.")
@click.option("--seed", type=int, default=0, show_default=True)
def causality(sample, st_path, sc_path, outdir, methods, max_genes, n_neighbors, radius, covariates, threshold, n_top, seed) -> None:
    """Directed gene pairs: spatial Granger-style F-test and causal linearization (docs/causality.md)."""
    from causalged.causality import run_causality

    paths = run_causality(sample, st_path, outdir, sc_path=sc_path, n_top=n_top, methods=[m.strip() for m in methods.split(",") if m.strip()],
                          max_genes=max_genes, n_neighbors=n_neighbors, radius=radius, covariates=covariates, threshold=threshold, seed=seed)
    click.echo(str(paths["csv"]))


@cli.command()
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Pipeline output folder to collect from.")
@click.option("--title", default="CausalGeD", show_default=True)
@click.option("--config", type=EXISTING, default=None, help="MultiQC config (default: assets/multiqc_config.yml).")
def report(outdir: Path, title: str, config: Path | None) -> None:
    """Aggregate every sample's outputs into one MultiQC report (<outdir>/multiqc/)."""
    from causalged.report import run_multiqc

    path = run_multiqc([outdir], outdir / "multiqc", title=title, config=config)
    click.echo(str(path))


@cli.command()
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="Samplesheet CSV (columns sample,sc,st[,genes,platform]).")
@click.option("--demo", is_flag=True, help="Simulate the demo data into <outdir>/demo_data and run on it.")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder (same layout as the Nextflow pipeline).")
@click.option("--method", default="knn_ridge_blend", show_default=True, help="Imputation method of the production branch (causalged = the paper-faithful model).")
@click.option("--eval-methods", default=None, help="Comma-separated methods compared by cross-validation, or a set: fast (the default: "
              "knn_ridge_blend,knn,kernel_ridge,spot_depth,mean_map), full (adds tangram and causalged), all.")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True, help="Model size preset for the diffusion model.")
@click.option("--epochs", type=int, default=None, help="Override the preset's training epochs.")
@click.option("--sampler", type=click.Choice(["ddim", "ddpm"]), default="ddim", show_default=True,
              help="Diffusion models, in cross-validation and impute: ddim (deterministic, --steps steps) or ddpm (ancestral).")
@click.option("--steps", type=int, default=50, show_default=True, help="Diffusion sampling steps (ddpm with --steps 0: all T).")
@click.option("--mode", type=click.Choice(["one_group", "autoregressive"]), default=None,
              help="Diffusion models: all latent tokens at once, or group by group (default: the method's own, autoregressive "
                   "for causalged_ar, else one_group; causalged_nomask is always sampled in one group).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-folds", type=int, default=None, help="Cross-validation folds over the shared genes [default: 10; 5 with --demo].")
@click.option("--top-fraction", type=float, default=0.25, show_default=True)
@click.option("--min-genes-cell", type=int, default=500, show_default=True, help="QC: drop cells with fewer detected genes (scaled down for small references).")
@click.option("--min-genes-spot", type=int, default=1, show_default=True, help="QC: drop spots with fewer detected genes.")
@click.option("--min-cells-gene", type=int, default=1, show_default=True, help="QC: drop genes detected in fewer observations.")
@click.option("--scale-min-genes/--no-scale-min-genes", default=True, show_default=True, help="QC: scale --min-genes-cell to the reference's gene count.")
@click.option("--already-normalized", is_flag=True, help="Inputs are log-normalized already: use them as they are.")
@click.option("--case-insensitive", is_flag=True, help="Match gene names ignoring capitalisation.")
@click.option("--skip-evaluation", is_flag=True, help="Only impute; skip the held-out-gene cross-validation.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cross-validation folds run at once, each in its own process with its share of the CPUs (--cpus) as threads.")
def run(input_path, demo, outdir, method, eval_methods, preset, epochs, sampler, steps, mode, device, seed, n_folds, top_fraction,
        min_genes_cell, min_genes_spot, min_cells_gene, scale_min_genes, already_normalized, case_insensitive, skip_evaluation, workers) -> None:
    """Run the whole pipeline on this machine (no Nextflow), ending with the MultiQC report.

    Everything is checked before the first step; a step whose inputs and parameters are unchanged
    since it last finished (pipeline_info/resume.json) is skipped, so the same command continues
    a killed run.
    """
    from causalged.pipeline import RunParams, run_pipeline

    if demo == bool(input_path):
        raise click.UsageError("give exactly one of --input SAMPLESHEET or --demo")
    if n_folds is None:
        n_folds = 5 if demo else 10  # the demo finishes in minutes on 2 cores
    params = RunParams(method=method, preset=preset, epochs=epochs, sampler=sampler, steps=steps, mode=mode, device=device, seed=seed,
                       n_folds=n_folds, top_fraction=top_fraction, min_genes_cell=min_genes_cell, min_genes_spot=min_genes_spot,
                       min_cells_gene=min_cells_gene, scale_min_genes=scale_min_genes, already_normalized=already_normalized,
                       case_insensitive=case_insensitive, evaluate=not skip_evaluation, demo=demo, workers=workers,
                       cpus=click.get_current_context().find_root().params.get("cpus"))
    if eval_methods:
        params.eval_methods = eval_methods
    report_path = run_pipeline(input_path, outdir, params)
    click.echo(f"MultiQC report: {report_path}")


def invoke_step(args: list[str]):
    """Run one step command in this process, letting its errors propagate to the caller's handler."""
    command = cli.commands[args[0]]
    with command.make_context(f"causalged {args[0]}", list(args[1:])) as ctx:
        return command.invoke(ctx)


def _register_step_commands() -> None:
    """Steps that live beside their code: the model (train, impute) and the evaluation."""
    from causalged.evaluation.cli import ablate, benchmark, crossval, evaluate
    from causalged.model.cli import impute, train

    for command in (train, impute, crossval, evaluate, benchmark, ablate):
        cli.add_command(command)


_register_step_commands()


def main() -> None:
    cli(prog_name="causalged")


def run_step(step: str) -> None:
    """Entry point of the ``bin/causalged-<step>`` scripts: the same command, its own name."""
    cli(args=[step, *sys.argv[1:]], prog_name=f"causalged-{step}")


if __name__ == "__main__":
    main()
