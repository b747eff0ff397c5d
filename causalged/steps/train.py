"""Training step: fit the production method on every shared gene and write ``<sample>.model/``.

The diffusion models (``causalged*``) train here, with checkpoints so a killed training resumes
where it stopped, and write their loss and validation curves for the report. Every other method
fits in seconds, so its folder holds only ``config.json`` (method, parameters, genes, input
fingerprints) and the impute step refits it from the data.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad

from causalged.errors import InputError
from causalged.methods import DEFAULT_METHOD, METHODS, MODEL_METHODS


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/train declares); the two curves only for a diffusion model."""
    outdir = Path(outdir)
    return {"model": outdir / f"{sample}.model", "training_mqc": outdir / f"{sample}.training_mqc.json",
            "training_pcc_mqc": outdir / f"{sample}.training_pcc_mqc.json"}


def _reference_for_training(path: Path, method: str) -> ad.AnnData:
    """The reference a model trains on, in memory; for a refit method only its cells and genes
    (the split is checked and recorded now, the values are read by the impute step), so that
    recording an atlas-size reference costs seconds, not a read of every entry."""
    from causalged.io import read_h5ad
    from causalged.stream import open_backed

    if method in MODEL_METHODS:
        return read_h5ad(path, role="sc", layers=False)
    backed = open_backed(path, role="sc")
    backed.close()
    return backed.skeleton


def run(*, sample: str, sc: Path, st: Path, split: Path, outdir: Path = Path("."), seed: int = 0, method: str = DEFAULT_METHOD,
        preset: str = "cpu", device: str = "auto", epochs: int | None = None, resume: bool = False,
        checkpoint_every: int | None = None, progress: bool = True) -> Path:
    """Train (or, for refit methods, record) ``method`` on every shared gene; returns the model folder."""
    from causalged.device import resolve_device
    from causalged.imputation import fingerprint, refit_params, require_genes, train_diffusion
    from causalged.io import check_writable, ensure_not_input, read_h5ad, write_json_atomic
    from causalged.preprocess import load_split

    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r}", f"choose one of {', '.join(METHODS)}")
    resolve_device(device)  # fail before reading data when --device cuda has no GPU, whatever the method
    outdir = Path(outdir)
    check_writable(outdir)  # before the training, not after it
    out = outputs(sample, outdir)
    model_dir = out["model"]
    ensure_not_input(model_dir, [sc, st, split])
    sc_data, st_data, gene_split = _reference_for_training(sc, method), read_h5ad(st, role="st"), load_split(split)
    for key in ("train", "val", "test"):
        require_genes(sc_data, gene_split[key], path=sc, what=key)
        require_genes(st_data, gene_split[key], path=st, what=key)
    data_info = {
        "sample": sample, "seed": seed, "train_genes": gene_split["train"], "val_genes": gene_split["val"], "test_genes": gene_split["test"],
        "sc_cells": sc_data.n_obs, "sc_fingerprint": fingerprint(sc_data.obs_names),
        "st_spots": st_data.n_obs, "st_fingerprint": fingerprint(st_data.obs_names),
        "inputs": {"sc": str(sc), "st": str(st), "split": str(split)},
    }
    fit_genes = gene_split["train"] + gene_split["val"] + gene_split["test"]  # production: every gene measured in both modalities
    if method in MODEL_METHODS:
        model = train_diffusion(method, sc_data, st_data, fit_genes, preset=preset, epochs=epochs, device=device, seed=seed,
                                checkpoint_dir=model_dir / "checkpoints", checkpoint_every=checkpoint_every, resume=resume,
                                progress=progress, label=sample)
        model.data_info = {**data_info, "fit_genes": fit_genes, "default_mode": model.default_mode}
        model.save(model_dir)
        write_training_curves(model, out, method=method, preset=preset)
    else:
        write_json_atomic({"method": method, "params": refit_params(method, seed=seed, device=device),
                           "data": {**data_info, "fit_genes": fit_genes}, "note": "refitted from the data by `causalged impute`"},
                          model_dir / "config.json")
    return model_dir


def write_training_curves(model, out: dict[str, Path], *, method: str, preset: str) -> None:
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
        losses, out["training_mqc"], section_id="causalged_training", section_name="Model training: losses",
        description=f"{method} ({preset} preset) loss per epoch on the training and validation genes; {where}.", xlab="epoch", ylab="loss",
    )
    scored = history[history["val_pcc"].notna()]
    if len(scored):
        report.write_mqc_linegraph(
            {"validation PCC (generated genes)": dict(zip(scored["epoch"], scored["val_pcc"]))},
            out["training_pcc_mqc"], section_id="causalged_training_pcc", section_name="Model training: validation PCC",
            description=(f"Mean Pearson r of generated vs measured maps of the {info['n_val_genes']} validation genes (held-out protocol), "
                         f"every few epochs; early stopping kept epoch {info.get('best_epoch')} (PCC {info.get('best_val_pcc', float('nan')):.3f}), "
                         f"then the model was refit on all genes for that many epochs."),
            xlab="epoch", ylab="PCC",
        )
