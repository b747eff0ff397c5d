"""Subcommands ``train`` and ``impute`` (registered on the ``causalged`` group by causalged/cli.py).

``train`` reads the hvg step's outputs and writes ``<outdir>/<sample>.model/``:

- ``config.json``: ``method``, ``params``, ``data`` (genes used, seed, input fingerprints) and,
  for the diffusion models, ``training`` (device used, epochs run, batch size, ...);
- for the diffusion methods (``causalged*``): ``model.pt`` (weights), ``training_log.csv`` (one row
  per epoch), ``refit_log.csv`` and ``checkpoints/`` (for ``--resume``), plus ``<sample>.training_mqc.json`` (losses) and
  ``<sample>.training_pcc_mqc.json`` (validation PCC);
- for every other method (``causalged.methods``): only ``config.json``; ``impute`` refits the
  method from the data, which for these methods takes seconds.

``impute`` writes ``<outdir>/<sample>.imputed.h5ad``: spots x target genes (reference genes the
ST panel did not measure, sc ``var["causalged_target"]``), with

- ``X``: the mean prediction over samples, ST log-normalized scale;
- ``layers["std"]``: per gene and spot, the standard deviation over the samples;
- ``obs`` and ``obsm["spatial"]``: those of the ST input;
- ``var["expected_pcc"]``: expected accuracy per gene (from ``--trust``, the evaluation's table; NaN without it),
  and ``var["trust"]``: high / medium / low by ``evaluation.trust.TRUST_CUTOFFS`` (empty without it);
- ``var["simulated_truth_pcc"]`` and ``uns["causalged"]["simulated_truth"]``: only on simulated data
  (the simulator kept the unmeasured genes' counts), the PCC reached against that truth;
- ``uns["causalged"]``: the ST input's step records plus ``"impute"`` (method, n_samples, seed,
  sampler, steps, mode, model folder, genes fitted on).

Beside it, for the report: ``figures/<sample>.target_maps.png`` with its MultiQC section
(``_mqc.html``) and, on simulated data, ``<sample>.simulated_truth_mqc.tsv``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any

import anndata as ad
import click
import numpy as np
import pandas as pd

from causalged.arrays import column_compressed, genes_per_block
from causalged.errors import InputError
from causalged.methods import DEFAULT_METHOD, METHODS, MODEL_METHODS

log = logging.getLogger(__name__)

EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _fingerprint(names) -> str:
    """Identifies an ordered list of cells or spots, so a model is only applied to its own data."""
    return hashlib.sha1("\n".join(map(str, names)).encode()).hexdigest()[:16]


def _require_genes(adata: ad.AnnData, genes: list[str], *, path: Path, what: str) -> None:
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise InputError(path, f"{len(missing)} {what} genes of the split are missing (e.g. {', '.join(missing[:3])})",
                         "use the .h5ad files and split.json written by the same hvg run")


def _reference_for_training(path: Path, method: str) -> ad.AnnData:
    """The reference a model trains on, in memory; for a refit method only its cells and genes
    (the split is checked and recorded now, the values are read by `causalged impute`), so that
    recording an atlas-size reference costs seconds, not a read of every entry."""
    from causalged.io import read_h5ad
    from causalged.stream import open_backed

    if method in MODEL_METHODS:
        return read_h5ad(path, role="sc", layers=False)
    backed = open_backed(path, role="sc")
    backed.close()
    return backed.skeleton


def _refit_params(method: str, *, seed: int, device: str) -> dict[str, Any]:
    """The seed/device a refit method accepts; everything else stays at the method's defaults."""
    from causalged.methods import get_imputer

    accepted = inspect.signature(type(get_imputer(method)).__init__).parameters
    return {key: value for key, value in (("seed", seed), ("device", device)) if key in accepted}


def train_model(
    sample: str,
    sc_path: Path,
    st_path: Path,
    split_path: Path,
    outdir: Path,
    *,
    method: str = DEFAULT_METHOD,
    preset: str = "cpu",
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (or, for refit methods, record) ``method`` on every shared gene; returns the model folder."""
    from causalged.io import check_writable, ensure_not_input, read_h5ad, write_json_atomic
    from causalged.preprocess import load_split

    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r}", f"choose one of {', '.join(METHODS)}")
    from causalged.model.training import resolve_device

    resolve_device(device)  # fail before reading data when --device cuda has no GPU, whatever the method
    outdir = Path(outdir)
    check_writable(outdir)  # before the training, not after it
    model_dir = outdir / f"{sample}.model"
    ensure_not_input(model_dir, [sc_path, st_path, split_path])
    sc_data, st_data, split = _reference_for_training(sc_path, method), read_h5ad(st_path, role="st"), load_split(split_path)
    for key in ("train", "val", "test"):
        _require_genes(sc_data, split[key], path=sc_path, what=key)
        _require_genes(st_data, split[key], path=st_path, what=key)
    data_info = {
        "sample": sample, "seed": seed, "train_genes": split["train"], "val_genes": split["val"], "test_genes": split["test"],
        "sc_cells": sc_data.n_obs, "sc_fingerprint": _fingerprint(sc_data.obs_names),
        "st_spots": st_data.n_obs, "st_fingerprint": _fingerprint(st_data.obs_names),
        "inputs": {"sc": str(sc_path), "st": str(st_path), "split": str(split_path)},
    }
    fit_genes = split["train"] + split["val"] + split["test"]  # production: every gene measured in both modalities
    if method in MODEL_METHODS:
        from causalged.methods import get_imputer
        from causalged.methods.diffusion import check_model_size
        from causalged.model import CausalGeD

        check_model_size(st_data.n_obs)
        imputer = get_imputer(method)
        model = CausalGeD(st_data.n_obs, sc_data.n_obs, method=imputer.design, preset=preset)
        log.info("%s: training %r on all %d shared genes (a seeded %.0f %% of them for early stopping, then a refit on all): %r",
                 sample, method, len(fit_genes), 100 * model.config["validation_fraction"], model)
        model.train(
            sc_data[:, fit_genes].X, st_data[:, fit_genes].X, epochs=epochs, device=device, checkpoint_dir=model_dir / "checkpoints",
            checkpoint_every=checkpoint_every, resume=resume, seed=seed, progress=progress, refit=True,
        )
        model.data_info = {**data_info, "fit_genes": fit_genes, "default_mode": imputer.default_mode}
        model.save(model_dir)
        write_training_curves(model, outdir, sample=sample, method=method, preset=preset)
    else:
        params = _refit_params(method, seed=seed, device=device)
        write_json_atomic({"method": method, "params": params, "data": {**data_info, "fit_genes": fit_genes},
                           "note": "refitted from the data by `causalged impute`"}, model_dir / "config.json")
    return model_dir


def write_training_curves(model, outdir: Path, *, sample: str, method: str, preset: str) -> None:
    """Two MultiQC line graphs: the losses per epoch, and the validation PCC that decided when to stop."""
    from causalged import report

    history, info = model.history, model.train_info
    losses = {}
    for phase in ("autoencoder", "diffusion", "joint"):
        rows = history[history["phase"] == phase]
        if len(rows):
            losses[f"{phase} train loss"] = dict(zip(rows["epoch"], rows["train_loss"]))
            if rows["val_loss"].notna().any():
                scored = rows[rows["val_loss"].notna()]
                losses[f"{phase} validation loss"] = dict(zip(scored["epoch"], scored["val_loss"]))
    if model.refit_history is not None:
        refit = model.refit_history
        losses["refit on all genes, train loss"] = dict(zip(refit["epoch"], refit["train_loss"]))
    where = f"device {info['device']}, {info['epochs_run']} epochs"
    report.write_mqc_linegraph(
        losses, outdir / f"{sample}.training_mqc.json", section_id="causalged_training", section_name="Model training: losses",
        description=f"{method} ({preset} preset) loss per epoch on the training and validation genes; {where}.", xlab="epoch", ylab="loss",
    )
    scored = history[history["val_pcc"].notna()]
    if len(scored):
        report.write_mqc_linegraph(
            {"validation PCC (generated genes)": dict(zip(scored["epoch"], scored["val_pcc"]))},
            outdir / f"{sample}.training_pcc_mqc.json", section_id="causalged_training_pcc", section_name="Model training: validation PCC",
            description=(f"Mean Pearson r of generated vs measured maps of the {info['n_val_genes']} validation genes (held-out protocol), "
                         f"every few epochs; early stopping kept epoch {info.get('best_epoch')} (PCC {info.get('best_val_pcc', float('nan')):.3f}), "
                         f"then the model was refit on all genes for that many epochs."),
            xlab="epoch", ylab="PCC",
        )


def impute_genes(
    sample: str,
    model_dir: Path,
    sc_path: Path,
    st_path: Path,
    outdir: Path,
    *,
    n_samples: int = 8,
    seed: int = 0,
    sampler: str = "ddim",
    steps: int | None = 50,
    mode: str | None = None,
    device: str = "auto",
    trust: Path | None = None,
    chunk_genes: int | None = None,
) -> Path:
    """Predict the target genes at every spot with a model folder from :func:`train_model`.

    ``trust`` is the ``<sample>.gene_trust.csv`` of the evaluation step: its expected accuracy of
    each target gene for this method lands in ``var["expected_pcc"]`` (NaN without it).
    Genes are predicted and written ``chunk_genes`` at a time (default: :func:`genes_per_block`),
    so memory does not grow with the number of targets.
    """
    from causalged.evaluation.figures import target_map_genes
    from causalged.evaluation.targets import block_truth_scores, requested_genes, write_target_report
    from causalged.evaluation.trust import trust_flag
    from causalged.io import check_writable, ensure_not_input, read_h5ad, record_step, write_h5ad_columns_atomic
    from causalged.model.training import resolve_device
    from causalged.stream import read_reference

    resolve_device(device)  # --device cuda without a GPU is an error, whatever the method
    check_writable(outdir)
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise InputError(model_dir, "no config.json in the model folder", "pass the <sample>.model folder written by `causalged train`")
    config = json.loads(config_path.read_text())
    out_path = Path(outdir) / f"{sample}.imputed.h5ad"
    ensure_not_input(out_path, [sc_path, st_path])
    st_data = read_h5ad(st_path, role="st")
    with read_reference(sc_path, layers=False) as sc_data:  # on disk above the stream limit: read in blocks of cells
        if "causalged_target" not in sc_data.var:
            raise InputError(sc_path, 'the reference has no var["causalged_target"] column', "pass the <sample>.sc.hvg.h5ad written by the hvg step")
        targets = list(sc_data.var_names[sc_data.var["causalged_target"].to_numpy(dtype=bool)])
        method, data = config["method"], config.get("data", {})
        fit_genes = data.get("fit_genes", [])
        if method in MODEL_METHODS:
            for key, adata, path in (("sc_fingerprint", sc_data, sc_path), ("st_fingerprint", st_data, st_path)):
                if data.get(key) and data[key] != _fingerprint(adata.obs_names):
                    raise InputError(path, "its cells/spots (names or order) differ from those the model was trained on",
                                     "impute with the same .h5ad files that `causalged train` used, or retrain")
        else:
            _require_genes(sc_data, fit_genes, path=sc_path, what="fitting")
            _require_genes(st_data, fit_genes, path=st_path, what="fitting")
        if not targets:
            log.warning("%s: the reference has no gene outside the ST panel: nothing to impute (writing an empty result)", sc_path)
        skeleton = ad.AnnData(obs=st_data.obs.copy(), var=pd.DataFrame(index=pd.Index(targets, dtype=str)))
        skeleton.obsm["spatial"] = np.asarray(st_data.obsm["spatial"], dtype=float)
        skeleton.var["expected_pcc"] = _expected_pcc(trust, method, targets)
        skeleton.var["trust"] = trust_flag(skeleton.var["expected_pcc"]).to_numpy()
        skeleton.uns["causalged"] = dict(st_data.uns.get("causalged", {}))
        predict, sampling = _predictor(config, model_dir, sc_data, st_data, targets, n_samples=n_samples, seed=seed, sampler=sampler,
                                       steps=steps, mode=mode, device=device)
        sc_genes = ad.AnnData(var=sc_data.var.copy())  # what the report needs once the matrices are taken
    block_genes = genes_per_block(st_data.n_obs, n_samples, chunk_genes)

    def blocks():
        """Predict, score and hand over one block of genes at a time; then the report and the record."""
        drawn = target_map_genes(skeleton.var, requested=requested_genes(sc_genes))
        maps, scores = [], []
        for start in range(0, max(len(targets), 1), block_genes):
            genes = targets[start:start + block_genes]
            mean, samples = predict(start, start + len(genes)) if genes else (np.zeros((st_data.n_obs, 0)), np.zeros((1, st_data.n_obs, 0)))
            block = ad.AnnData(X=np.asarray(mean, dtype=np.float32), obs=pd.DataFrame(index=skeleton.obs_names), var=skeleton.var.loc[genes])
            block.obsm["spatial"] = skeleton.obsm["spatial"]
            maps.append(block[:, [g for g in genes if g in drawn]].copy())
            scores.append(_report_safely(sample, "simulated truth not scored", block_truth_scores, block, st_data))
            yield start, {"X": block.X, "std": np.asarray(samples, dtype=np.float32).std(axis=0)}
        known = [table for table in scores if table is not None]
        _report_safely(sample, "imputed-gene maps not drawn", write_target_report, sample, skeleton, ad.concat(maps, axis=1, merge="first"),
                       pd.concat(known, ignore_index=True) if known else None, sc_genes, outdir=Path(outdir))
        record_step(skeleton, "impute", {
            "method": method, "n_samples": n_samples, "seed": seed, "sampler": sampler if method in MODEL_METHODS else None,
            "steps": steps if method in MODEL_METHODS else None, "mode": sampling.get("mode"),
            "model": str(model_dir), "n_targets": len(targets), "n_fit_genes": len(fit_genes), "genes_per_block": block_genes,
            "clipped_fraction": sampling.get("clipped_fraction"), "reference_pooled": sampling.get("reference_pooled"),
        })

    write_h5ad_columns_atomic(skeleton, out_path, blocks())
    log.info("%s: imputed %d genes at %d spots with %s -> %s", sample, len(targets), st_data.n_obs, method, out_path)
    return out_path


def _predictor(config: dict, model_dir: Path, sc_data: ad.AnnData, st_data: ad.AnnData, targets: list[str], *,
               n_samples: int, seed: int, sampler: str, steps: int | None, mode: str | None, device: str):
    """``predict(start, stop)`` -> (mean, samples) of targets[start:stop], and the sampling record.

    The model is loaded (or the method fitted) once; only the targets' scRNA-seq columns are
    sliced per block (column-compressed, so slicing is cheap and nothing is densified but the block).
    A reference on disk is read in blocks of cells, never whole: the fitting genes before the
    fit, the targets after it (pooled into the fit's metacells as they are read, when the fit
    pooled). An in-memory one has ``X`` released once both are sliced.
    """
    from causalged.arrays import as_dense
    from causalged.stream import BackedReference, reference_columns

    method, fit_genes = config["method"], config.get("data", {}).get("fit_genes", [])
    sampling: dict[str, Any] = {}
    if not targets:
        return None, sampling
    backed = isinstance(sc_data, BackedReference)

    def columns(genes: list[str]):
        return reference_columns(sc_data, {"genes": genes})["genes"]

    if method in MODEL_METHODS:
        from causalged.model import CausalGeD

        target_matrix = column_compressed(columns(targets))
        model = CausalGeD.load(model_dir, device=device)
        sampling["mode"] = mode = mode or model.data_info.get("default_mode", "one_group")
        if mode == "autoregressive" and not model.config["causal_mask"]:
            raise InputError(model_dir, f"--mode autoregressive needs the causal mask, and this {method} model has none",
                             "impute it with --mode one_group, or train causalged / causalged_ar")
        clipped = []

        def predict(start: int, stop: int):
            out = model.impute(target_matrix[:, start:stop], n_samples=n_samples, sampler=sampler, steps=steps, mode=mode, seed=seed)
            clipped.append((stop - start, model.sampling_info.get("clipped_fraction")))
            known = [(n, c) for n, c in clipped if c is not None]
            sampling["clipped_fraction"] = sum(n * c for n, c in known) / sum(n for n, _ in known) if known else None
            return out

        return predict, sampling
    from causalged.methods import get_imputer

    handed_over = [columns(fit_genes)]  # popped into the fit, which then holds the only reference and drops it once pooled
    target_matrix = None if backed else columns(targets)
    if not backed:
        sc_data.X = None  # both slices taken: the whole reference, as large as the two, is not needed again
    imputer = get_imputer(method, **config.get("params", {}))
    counts = st_data[:, fit_genes].layers["counts"] if imputer.needs_counts and "counts" in st_data.layers else None
    # no method's fit reads the targets; it keeps what it needs (pooled above the metacell limit)
    imputer.fit(handed_over.pop(), st_data[:, fit_genes].X, st_counts=counts, st_coords=st_data.obsm.get("spatial"))
    # after the fit, so the targets never share memory with the fitting genes; pooled like the fit's
    # reference when it was pooled (an atlas's targets on disk are then never held cell by cell)
    pool = getattr(imputer, "cell_pool_", None)
    if pool is None:
        target_matrix = column_compressed(columns(targets) if backed else target_matrix)
    else:
        target_matrix = sc_data.pooled_columns(targets, pool) if backed else as_dense(pool @ target_matrix).astype(np.float32)
    sampling["reference_pooled"] = imputer.pooling_

    def predict(start: int, stop: int):
        return imputer.predict_with_samples(target_matrix[:, start:stop], n_samples=n_samples, seed=seed)

    return predict, sampling


def _report_safely(sample: str, what: str, function, *args, **kwargs):
    """The report's view of the targets must never sink the imputation itself."""
    try:
        return function(*args, **kwargs)
    except Exception as err:
        log.warning("%s: %s (%s: %s)", sample, what, type(err).__name__, err)
        return None


def _expected_pcc(trust: Path | None, method: str, targets: list[str]) -> np.ndarray:
    """Per-target expected PCC for ``method`` from the evaluation's gene trust table."""
    if trust is None:
        return np.full(len(targets), np.nan)
    table = pd.read_csv(trust)
    missing = {"gene", "method", "expected_pcc"} - set(table.columns)
    if missing:
        raise InputError(trust, f"the gene trust table misses columns {sorted(missing)}", "pass the <sample>.gene_trust.csv written by `causalged evaluate`")
    rows = table[table["method"] == method].set_index("gene")["expected_pcc"]
    if rows.empty:
        log.warning("%s: no trust estimate for method %s (it was not cross-validated); expected_pcc left NaN", trust, method)
    return rows.reindex(targets).to_numpy(dtype=float)


@click.command()
@click.option("--sample", required=True, help="Sample id; prefixes every output file.")
@click.option("--sc", "sc_path", required=True, type=click.Path(path_type=Path), help="Reference after hvg (<sample>.sc.hvg.h5ad).")
@click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="Spatial data after hvg (<sample>.st.hvg.h5ad).")
@click.option("--split", "split_path", required=True, type=click.Path(path_type=Path), help="Gene split (<sample>.split.json): trains on 'train', early-stops on 'val'.")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Folder for the outputs (created if missing).")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True,
              help="causalged / causalged_nomask train the diffusion model here; other methods are refitted by `impute`.")
@click.option("--preset", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True, help="Diffusion model size: cpu (small, fast) or paper (the paper's architecture).")
@click.option("--epochs", type=int, default=None, help="Override the preset's maximum number of epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: CUDA when PyTorch sees a GPU; cuda without one is an error.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialisation, batches, noise and metacells.")
@click.option("--resume", is_flag=True, help="Continue from <sample>.model/checkpoints/last.pt (after a kill); ends where an uninterrupted run would.")
@click.option("--checkpoint-every", type=int, default=None, help="Epochs between checkpoints (default: the preset's).")
def train(sample, sc_path, st_path, split_path, outdir, method, preset, epochs, device, seed, resume, checkpoint_every) -> None:
    """Train the imputation model on the split's training genes: <sample>.model/."""
    path = train_model(sample, sc_path, st_path, split_path, outdir, method=method, preset=preset, epochs=epochs, device=device,
                       seed=seed, resume=resume, checkpoint_every=checkpoint_every)
    click.echo(str(path))


@click.command()
@click.option("--sample", required=True, help="Sample id; prefixes every output file.")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Model folder from `causalged train` (<sample>.model).")
@click.option("--sc", "sc_path", required=True, type=click.Path(path_type=Path), help="Reference after hvg (<sample>.sc.hvg.h5ad).")
@click.option("--st", "st_path", required=True, type=click.Path(path_type=Path), help="Spatial data after hvg (<sample>.st.hvg.h5ad).")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Folder for the outputs (created if missing).")
@click.option("--n-samples", type=int, default=8, show_default=True, help="Samples per gene; their spread is layers['std'].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling noise.")
@click.option("--sampler", type=click.Choice(["ddim", "ddpm"]), default="ddim", show_default=True, help="Diffusion models: ddim (deterministic, --steps steps) or ddpm (ancestral).")
@click.option("--steps", type=int, default=50, show_default=True, help="Diffusion sampling steps (ddpm with --steps 0: all T).")
@click.option("--mode", type=click.Choice(["one_group", "autoregressive"]), default=None,
              help="Diffusion models: all latent tokens at once, or group by group as the paper describes "
                   "(default: the method's own, autoregressive for causalged_ar, else one_group).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--trust", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="<sample>.gene_trust.csv from `causalged evaluate`: fills var['expected_pcc'] of each imputed gene.")
@click.option("--chunk-genes", type=int, default=0, show_default=True,
              help="Genes predicted and written at a time (0: as many as fit in 256 MB), so memory does not grow with the targets.")
def impute(sample, model_dir, sc_path, st_path, outdir, n_samples, seed, sampler, steps, mode, device, trust, chunk_genes) -> None:
    """Impute the target genes at every spot: <sample>.imputed.h5ad (mean + per-spot std)."""
    if n_samples < 1:
        raise click.BadParameter("must be at least 1", param_hint="--n-samples")
    if chunk_genes < 0:
        raise click.BadParameter("must be 0 (automatic) or more", param_hint="--chunk-genes")
    path = impute_genes(sample, model_dir, sc_path, st_path, outdir, n_samples=n_samples, seed=seed, sampler=sampler,
                        steps=steps or None, mode=mode, device=device, trust=trust, chunk_genes=chunk_genes or None)
    click.echo(str(path))
