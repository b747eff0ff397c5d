"""Fitting a method and predicting target genes: the core that the train and impute steps and the Python API share.

A production fit uses every gene both modalities measure. The diffusion models train here (with
a seeded share of those genes held back for early stopping, then a refit on all of them); every
other method fits in seconds, so the train step only records it and the impute step refits it.
:func:`predictor` returns a function that predicts a block of target genes at a time (mean and
samples), so memory does not grow with the number of targets, and the caller decides where the
blocks go (an .h5ad on disk, or an AnnData in memory).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from causalged.arrays import column_compressed
from causalged.errors import InputError
from causalged.methods import MODEL_METHODS

log = logging.getLogger(__name__)


def fingerprint(names) -> str:
    """Identifies an ordered list of cells or spots, so a model is only applied to its own data."""
    return hashlib.sha1("\n".join(map(str, names)).encode()).hexdigest()[:16]


def require_genes(adata: ad.AnnData, genes: list[str], *, path: Path | None, what: str) -> None:
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise InputError(path, f"{len(missing)} {what} genes of the split are missing (e.g. {', '.join(missing[:3])})",
                         "use the .h5ad files and split.json written by the same hvg run")


def refit_params(method: str, *, seed: int, device: str) -> dict[str, Any]:
    """The seed/device a refit method accepts; everything else stays at the method's defaults."""
    from causalged.methods import get_imputer

    accepted = inspect.signature(type(get_imputer(method)).__init__).parameters
    return {key: value for key, value in (("seed", seed), ("device", device)) if key in accepted}


def train_diffusion(method: str, sc_data: ad.AnnData, st_data: ad.AnnData, fit_genes: list[str], *, preset: str = "cpu",
                    epochs: int | None = None, device: str = "auto", seed: int = 0, checkpoint_dir: Path | None = None,
                    checkpoint_every: int | None = None, resume: bool = False, progress: bool = True, label: str = ""):
    """Train a diffusion method (``causalged*``) on ``fit_genes``; returns the fitted :class:`~causalged.model.CausalGeD`."""
    from causalged.methods import get_imputer
    from causalged.methods.diffusion import check_model_size
    from causalged.model import CausalGeD

    check_model_size(st_data.n_obs)
    imputer = get_imputer(method)
    model = CausalGeD(st_data.n_obs, sc_data.n_obs, method=imputer.design, preset=preset)
    log.info("%s: training %r on all %d shared genes (a seeded %.0f %% of them for early stopping, then a refit on all): %r",
             label or "model", method, len(fit_genes), 100 * model.config["validation_fraction"], model)
    model.train(sc_data[:, fit_genes].X, st_data[:, fit_genes].X, epochs=epochs, device=device, checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every, resume=resume, seed=seed, progress=progress, refit=True)
    model.default_mode = imputer.default_mode
    return model


def predictor(method: str, sc_data, st_data: ad.AnnData, fit_genes: list[str], targets: list[str], *, params: dict | None = None,
              model=None, n_samples: int = 8, seed: int = 0, sampler: str = "ddim", sampling_steps: int | None = 50,
              inference_mode: str | None = None, model_dir: Path | None = None):
    """``predict(start, stop)`` -> (mean, samples) of ``targets[start:stop]``, and the sampling record.

    ``model`` is a trained diffusion model for the ``causalged*`` methods; any other method is
    fitted here on ``fit_genes`` with ``params``. Only the targets' reference columns are sliced
    per block (column-compressed, so slicing is cheap and nothing is densified but the block).
    A reference on disk (:class:`~causalged.stream.BackedReference`) is read in blocks of cells,
    never whole: the fitting genes before the fit, the targets after it (pooled into the fit's
    metacells as they are read, when the fit pooled). An in-memory one has ``X`` released once
    both are sliced when it is the caller's own copy (``model_dir`` given: the impute step).
    """
    from causalged.arrays import as_dense
    from causalged.stream import BackedReference, reference_columns

    sampling: dict[str, Any] = {}
    if not targets:
        return None, sampling
    backed = isinstance(sc_data, BackedReference)

    def columns(genes: list[str]):
        return reference_columns(sc_data, {"genes": genes})["genes"]

    if method in MODEL_METHODS:
        target_matrix = column_compressed(columns(targets))
        sampling["mode"] = mode = inference_mode or getattr(model, "default_mode", None) or model.data_info.get("default_mode", "one_group")
        if mode == "autoregressive" and not model.config["causal_mask"]:
            raise InputError(model_dir, f"--inference-mode autoregressive needs the causal mask, and this {method} model has none",
                             "impute it with --inference-mode one_group, or train causalged / causalged_ar")
        clipped = []

        def predict(start: int, stop: int):
            out = model.impute(target_matrix[:, start:stop], n_samples=n_samples, sampler=sampler, steps=sampling_steps, mode=mode, seed=seed)
            clipped.append((stop - start, model.sampling_info.get("clipped_fraction")))
            known = [(n, c) for n, c in clipped if c is not None]
            sampling["clipped_fraction"] = sum(n * c for n, c in known) / sum(n for n, _ in known) if known else None
            return out

        return predict, sampling
    from causalged.methods import get_imputer

    handed_over = [columns(fit_genes)]  # popped into the fit, which then holds the only reference and drops it once pooled
    target_matrix = None if backed else columns(targets)
    if not backed and model_dir is not None:
        sc_data.X = None  # both slices taken: the whole reference, as large as the two, is not needed again
    imputer = get_imputer(method, **(params or {}))
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


def expected_pcc(trust: pd.DataFrame | None, method: str, targets: list[str], *, source: Path | None = None) -> np.ndarray:
    """Per-target expected PCC for ``method`` from the evaluation's gene trust table (NaN without one)."""
    if trust is None:
        return np.full(len(targets), np.nan)
    missing = {"gene", "method", "expected_pcc"} - set(trust.columns)
    if missing:
        raise InputError(source, f"the gene trust table misses columns {sorted(missing)}", "pass the <sample>.gene_trust.csv written by `causalged evaluate`")
    rows = trust[trust["method"] == method].set_index("gene")["expected_pcc"]
    if rows.empty:
        log.warning("%s: no trust estimate for method %s (it was not cross-validated); expected_pcc left NaN", source or "trust table", method)
    return rows.reindex(targets).to_numpy(dtype=float)
