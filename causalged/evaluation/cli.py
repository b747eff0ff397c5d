"""Subcommands ``crossval``, ``evaluate`` and ``benchmark`` (registered on the ``causalged`` group)."""

from __future__ import annotations

from pathlib import Path

import click

from causalged.methods import DEFAULT_METHOD, METHODS, MODEL_METHODS

EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
METHODS_HELP = f"Comma-separated methods (default: all: {','.join(METHODS)}). Default method: {DEFAULT_METHOD}."
#: The sampling options of `causalged impute`, so that cross-validation scores the model as it will impute.
INFERENCE_OPTIONS = [
    click.option("--sampler", type=click.Choice(["ddim", "ddpm"]), default="ddim", show_default=True,
                 help="Diffusion models: ddim (deterministic, --steps steps) or ddpm (ancestral)."),
    click.option("--steps", type=int, default=50, show_default=True, help="Diffusion sampling steps (ddpm with --steps 0: all T)."),
    click.option("--mode", type=click.Choice(["one_group", "autoregressive"]), default=None,
                 help="Diffusion models: all latent tokens at once, or group by group as the paper describes (default: the "
                      "method's own, autoregressive for causalged_ar, else one_group). causalged_nomask, which has no causal "
                      "mask, is always sampled in one group."),
]


def _inputs(func):
    for option in reversed([
        click.option("--sample", required=True, help="Sample id; prefixes every output file."),
        click.option("--sc", "sc_path", required=True, type=click.Path(path_type=Path), help="Reference after hvg (<sample>.sc.hvg.h5ad)."),
        click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="Spatial data after hvg (<sample>.st.hvg.h5ad)."),
        click.option("--split", "split_path", required=True, type=click.Path(path_type=Path), help="Gene split with folds (<sample>.split.json)."),
        click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Folder for the outputs (created if missing)."),
        click.option("--methods", default=None, help=METHODS_HELP),
        click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True, help="Size of the diffusion models (causalged, causalged_nomask)."),
        click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda, for the diffusion models."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of every method's randomness (folds come from the split)."),
        click.option("--n-samples", type=int, default=40, show_default=True, help="Samples for the uncertainty interval of the default method and the diffusion models (0: none)."),
        click.option("--epochs", type=int, default=None, help="Training epochs of the diffusion models (default: the preset's)."),
        *INFERENCE_OPTIONS,
    ]):
        func = option(func)
    return func


def model_overrides(epochs: int | None, sampler: str = "ddim", steps: int = 50, mode: str | None = None) -> dict:
    """Per-method settings from the command line: the diffusion models' epochs and sampling.

    ``steps`` 0 means all T (ddpm); ``mode`` None keeps each method's own. causalged_nomask has
    no causal mask to sample group by group along, so it always gets one_group.
    """
    settings = {"sampler": sampler, "steps": steps or None, "mode": mode, **({"epochs": epochs} if epochs else {})}
    return {m: {**settings, "mode": "one_group"} if m == "causalged_nomask" else dict(settings) for m in MODEL_METHODS}


@click.command()
@_inputs
@click.option("--fold", type=int, required=True, help="Fold to run (0-based, as in the split).")
def crossval(sample, sc_path, st_path, split_path, outdir, methods, preset, device, seed, n_samples, epochs, sampler, steps, mode, fold) -> None:
    """Held-out-gene cross-validation, one fold: <sample>.fold<K>.predictions.h5ad.

    The fold's genes are removed from the ST input (re-normalized from the training genes'
    raw counts) and predicted from their scRNA-seq vectors by every method.
    """
    from causalged.evaluation.evaluate import crossval_fold, parse_methods
    from causalged.model.training import resolve_device

    resolve_device(device)  # --device cuda without a GPU is an error before any work, whatever the methods
    path = crossval_fold(sample, sc_path, st_path, split_path, fold, outdir, methods=parse_methods(methods), seed=seed,
                         n_samples=n_samples, preset=preset, device=device, overrides=model_overrides(epochs, sampler, steps, mode))
    click.echo(str(path))


@click.command()
@_inputs
@click.option("--predictions", type=EXISTING, multiple=True, help="Fold files from `crossval` (repeat the option, or list them after it); if none, every fold is run here.")
@click.option("--metrics", "metric_set", type=click.Choice(["canonical", "paper"]), default="canonical", show_default=True,
              help="canonical: SpatialBenchmarking definitions; paper: the public CausalGeD code's variants (labelled in outputs).")
@click.option("--protocol", type=click.Choice(["heldout", "paper-inpainting"]), default="heldout", show_default=True,
              help="paper-inpainting ADDS the public code's masked-inpainting scores (most true values written back) with their noise control, labelled; held-out scores are always written.")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.argument("more_predictions", nargs=-1, type=EXISTING)
def evaluate(sample, sc_path, st_path, split_path, outdir, methods, preset, device, seed, n_samples, epochs, sampler, steps, mode, predictions, metric_set, protocol, no_figures, more_predictions) -> None:
    """Score cross-validated predictions: metrics.csv, held-out predictions, trust, figures."""
    from causalged.evaluation.evaluate import evaluate_sample
    from causalged.model.training import resolve_device

    resolve_device(device)
    paths = evaluate_sample(sample, sc_path, st_path, split_path, outdir, predictions=[*predictions, *more_predictions], methods=methods,
                            metric_set=metric_set, protocol=protocol, seed=seed, n_samples=n_samples, preset=preset, device=device,
                            make_figures=not no_figures, overrides=model_overrides(epochs, sampler, steps, mode))
    for key, path in paths.items():
        click.echo(f"{key}\t{path}")


@click.command()
@click.argument("datasets", nargs=-1)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/benchmarks.md"), show_default=True)
@click.option("--design-split", is_flag=True, help="Report the datasets the default was designed on (osmFISH, MERFISH) apart from every "
              "other dataset given (unseen by its design), with the default's margin and per-fold choices on each.")
@click.option("--methods", default=None, help=METHODS_HELP)
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds (gene folds and method randomness).")
@click.option("--slow-seeds", type=int, default=1, show_default=True, help="Run tangram and causalged_plus on only this many of the seeds (CPU time).")
@click.option("--model-seeds", type=int, default=None, help="Run the diffusion models (causalged*) on only this many of the seeds (default: all).")
@click.option("--n-folds", type=int, default=10, show_default=True)
@click.option("--n-samples", type=int, default=40, show_default=True, help="Bootstrap/diffusion samples for the calibration check (first seed).")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--jobs", type=int, default=1, show_default=True, help="Datasets run at once, one process (and one CPU thread) each.")
@click.option("--model-epochs", type=int, default=None,
              help="Cap the diffusion models' epochs (a speed option for quick looks; default: the preset's budget with early stopping).")
def benchmark(datasets, output, design_split, methods, seeds, slow_seeds, model_seeds, n_folds, n_samples, preset, device, jobs, model_epochs) -> None:
    """Run every method on each DATASET folder (sc.h5ad + st.h5ad of raw counts) or `demo`.

    Default: each pair under ../shared/data beside the repository, plus the simulated demo.
    Writes a markdown page with mean ± SD of PCC/SSIM/RMSE/JS, the AS, wall time, machine and
    versions, and for osmFISH the published SpatialBenchmarking numbers, labelled as such.
    """
    from causalged.evaluation.benchmark import default_datasets, run_benchmark
    from causalged.evaluation.evaluate import parse_methods

    chosen = list(datasets) or default_datasets(Path(__file__).resolve().parents[2])
    overrides = model_overrides(model_epochs) if model_epochs else None  # None: every method at its defaults
    ctx = click.get_current_context()
    given = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in ctx.params.items()
             if k != "datasets" and ctx.get_parameter_source(k).name == "COMMANDLINE"]
    command = " ".join(["causalged benchmark", *datasets, *given])
    path = run_benchmark(chosen, output=output, seeds=[int(s) for s in seeds.split(",") if s.strip()], methods=parse_methods(methods),
                         slow_seeds=slow_seeds, model_seeds=model_seeds, jobs=jobs, n_folds=n_folds, n_samples=n_samples, preset=preset, device=device,
                         overrides=overrides, command=command, design_split=design_split)
    click.echo(str(path))


@click.command()
@click.argument("datasets", nargs=-1, required=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/ablations.md"), show_default=True)
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated seeds (gene folds and model randomness).")
@click.option("--n-folds", type=int, default=5, show_default=True)
@click.option("--axes", default=None, help="Comma-separated axes (default: all: decoder,encoder,ar_decay,depth,sampler,mask,inference).")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--n-samples", type=int, default=8, show_default=True, help="Diffusion samples per gene; their mean is scored.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Datasets run at once, one process (and one CPU thread) each.")
@click.option("--model-epochs", type=int, default=None, help="Cap the epochs (a speed option for quick looks; default: the preset's budget).")
@click.option("--time-limit", type=float, default=None, help="Minutes after which no new fold starts; the page says how far it got, "
              "and the same command continues (finished folds are kept). 0: only write the page from the kept folds.")
@click.option("--mqc-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the verdicts and figures there as MultiQC content (then: causalged report --outdir DIR).")
def ablate(datasets, output, seeds, n_folds, axes, preset, device, n_samples, jobs, model_epochs, time_limit, mqc_dir) -> None:
    """The paper's ablation claims under the held-out protocol, one axis at a time, on each DATASET.

    DATASET: a folder with raw-count sc.h5ad + st.h5ad, or `demo`. Writes the page (verdict per
    claim), the per-gene CSV beside it and one figure per axis.
    """
    from causalged.evaluation.ablation import ablate as run, grid

    known = sorted({s.axis for s in grid()} - {"default"})
    chosen = [a.strip() for a in axes.split(",") if a.strip()] if axes else None
    unknown = sorted(set(chosen or []) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown axes {unknown}; choose from {','.join(known)}", param_hint="--axes")
    ctx = click.get_current_context()
    given = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in ctx.params.items()
             if k != "datasets" and ctx.get_parameter_source(k).name == "COMMANDLINE"]
    path = run(list(datasets), output=output, seeds=[int(s) for s in seeds.split(",") if s.strip()], n_folds=n_folds, axes=chosen,
               preset=preset, device=device, epochs=model_epochs, n_samples=n_samples, jobs=jobs, time_limit=time_limit, mqc_dir=mqc_dir,
               command=" ".join(["causalged ablate", *datasets, *given]))
    click.echo(str(path))
