"""Held-out-gene cross-validation: the protocol users care about (method.md section 4).

In fold k the fold's genes are removed from the ST input entirely. The ST input is
re-normalized from the raw counts of the training genes only (in real use an unmeasured gene
never adds to a spot's library size), every method is fitted on the training genes, and the
held-out genes are predicted from their scRNA-seq vectors alone. Predictions are scored
against the full-panel normalized ST values (primary) and against raw counts (secondary).

The paper's masked-inpainting protocol is here only to reproduce the published numbers:
:func:`paper_inpainting` writes most true values back into a prediction, exactly as the
public code does, and is always reported beside its noise control.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from causalged.errors import InputError
from causalged.io import read_h5ad, to_jsonable
from causalged.methods import DEFAULT_METHOD, MODEL_METHODS, get_imputer
from causalged.arrays import as_dense, column_compressed, genes_per_block, renormalize_log
from causalged.preprocess import load_split, normalize_counts
from causalged.stream import reference_columns

log = logging.getLogger(__name__)

PROTOCOLS = ("heldout", "paper-inpainting")
PROTOCOL_LABELS = {
    "heldout": "held-out genes (test genes absent from the ST input; K-fold over shared genes)",
    "paper-inpainting": "PAPER PROTOCOL (masked inpainting): 70% of non-zero and all zero true values written back; not a held-out score",
}
#: Share of each gene's non-zero entries the public code hides under the paper protocol.
INPAINT_HIDDEN_FRACTION = 0.3
#: Suffixes of the interval layers stored beside a method's prediction layer.
INTERVAL_SUFFIXES = ("_q05", "_q95")
INTERVAL_QUANTILES = (0.05, 0.95)  # of the samples, one per suffix


def fold_inputs(sc_data: ad.AnnData, st_data: ad.AnnData, split: dict[str, Any], fold: int) -> dict[str, Any]:
    """The arrays one fold uses; the held-out genes' ST values appear only in the truth entries.

    The reference entries (``sc_train``, ``sc_heldout``) stay sparse when the reference is: a
    method densifies them only after pooling a large reference into metacells (methods/base.py).
    A reference left on disk (:class:`~causalged.stream.BackedReference`) gives both in one pass.
    """
    n_folds = len(split["folds"])
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold {fold} does not exist: the split has folds 0..{n_folds - 1}")
    heldout = list(split["folds"][fold])
    train = [g for f, genes in enumerate(split["folds"]) if f != fold for g in genes]
    missing = [g for g in heldout + train if g not in st_data.var_names or g not in sc_data.var_names]
    if missing:
        raise ValueError(f"split genes missing from the inputs: {missing[:5]}")
    counts = st_data.layers["counts"] if "counts" in st_data.layers else None
    if counts is not None:
        st_counts_train = st_data[:, train].layers["counts"]  # as stored (sparse or float32): a method densifies it only if it reads it
        st_train = normalize_counts(st_counts_train).astype(np.float64)
        truth_counts = as_dense(st_data[:, heldout].layers["counts"])
    else:
        log.warning("ST data has no layers['counts']: re-normalizing the fold input from its log values, no raw-count scores")
        st_counts_train = None
        st_train = renormalize_log(as_dense(st_data[:, train].X))
        truth_counts = None
    reference = _fold_matrices(sc_data, {"train": train, "heldout": heldout})
    return {
        "train_genes": train,
        "heldout_genes": heldout,
        "sc_train": reference["train"],
        "sc_heldout": reference["heldout"],
        "st_train": st_train,
        "st_counts_train": st_counts_train,
        "st_coords": np.asarray(st_data.obsm["spatial"], dtype=float) if "spatial" in st_data.obsm else None,
        "truth": as_dense(st_data[:, heldout].X),
        "truth_counts": truth_counts,
    }


def _fold_matrices(sc_data, genes: dict[str, list[str]]) -> dict[str, Any]:
    """Cells x each named list of genes: CSR (the reference's dtype) if it is sparse or on disk,
    else dense float64."""
    return {name: sp.csr_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix, dtype=np.float64)
            for name, matrix in reference_columns(sc_data, genes).items()}


def method_params(name: str, *, seed: int, preset: str = "cpu", device: str = "auto", overrides: dict | None = None) -> dict[str, Any]:
    """Keyword arguments for one method in cross-validation (seed, and model settings)."""
    params: dict[str, Any] = {}
    if name in ("knn", "knn_ridge_blend", "tangram"):
        params["seed"] = seed
    if name in MODEL_METHODS:
        params.update(seed=seed, preset=preset, device=device)
    params.update((overrides or {}).get(name, {}))
    return params


def fit_predict(name: str, inputs: dict[str, Any], *, params: dict[str, Any], n_samples: int = 0, seed: int = 0,
                trained: dict | None = None, hand_over_reference: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None, dict]:
    """Fit one method on a fold's training genes; predict the held-out genes, and with
    ``n_samples`` their 5 % and 95 % quantiles over that many samples: (prediction, interval, info).

    ``trained`` (a dict kept across the methods of one fold) lets methods that train the same
    model under different sampling settings (``causalged`` and ``causalged_ar``) share one fit.
    ``hand_over_reference`` (the fold's last method) pops the training genes' reference out of
    ``inputs`` into the fit, which then holds the only copy and drops it once pooled into
    metacells: at atlas size the cells are 3 GB beside the fit's pooled copy, as in impute.
    """
    imputer = get_imputer(name, **params)
    key = imputer.training_key() if hasattr(imputer, "training_key") else None
    if trained is not None and key in trained:
        imputer.adopt_fit(trained[key])
    else:
        imputer.fit(inputs.pop("sc_train") if hand_over_reference else inputs["sc_train"], inputs["st_train"], sc_target=inputs["sc_heldout"],
                    st_counts=inputs["st_counts_train"], st_coords=inputs.get("st_coords"))
        if trained is not None and key is not None:
            trained[key] = imputer
    if n_samples <= 0:
        return np.asarray(imputer.predict(inputs["sc_heldout"]), dtype=np.float32), None, imputer.info_
    # a block of held-out genes at a time, as impute does: 40 samples of 500 genes at 10^5 spots would be 8 GB
    targets = column_compressed(inputs["sc_heldout"])
    step = genes_per_block(inputs["st_train"].shape[0], n_samples)
    blocks = []
    for start in range(0, targets.shape[1], step):
        mean, samples = imputer.predict_with_samples(targets[:, start:start + step], n_samples=n_samples, seed=seed)
        blocks.append((mean, *(np.quantile(samples, q, axis=0) for q in INTERVAL_QUANTILES)))
    pred, low, high = (np.concatenate(parts, axis=1).astype(np.float32) for parts in zip(*blocks))
    return pred, (low, high), imputer.info_


def run_fold(
    sc_data: ad.AnnData,
    st_data: ad.AnnData,
    split: dict[str, Any],
    fold: int,
    *,
    methods: Sequence[str],
    seed: int = 0,
    n_samples: int = 40,
    uncertainty_methods: Sequence[str] | None = None,
    preset: str = "cpu",
    device: str = "auto",
    overrides: dict | None = None,
) -> ad.AnnData:
    """Run every method on one fold; return spots x held-out genes with one layer per method.

    ``X`` holds the full-panel normalized truth and ``layers["counts"]`` the raw truth, so the
    file alone is enough to recompute every metric. Methods in ``uncertainty_methods``
    (default: the default method and the diffusion models) also get the 5 % and 95 %
    quantiles of ``n_samples`` samples as layers ``<method>_q05`` / ``<method>_q95``.
    """
    inputs = fold_inputs(sc_data, st_data, split, fold)
    if uncertainty_methods is None:
        uncertainty_methods = [m for m in methods if m == DEFAULT_METHOD or m in MODEL_METHODS]
    out = ad.AnnData(
        X=inputs["truth"].astype(np.float32),
        obs=pd.DataFrame(index=st_data.obs_names.copy()),
        var=pd.DataFrame({"fold": fold}, index=pd.Index(inputs["heldout_genes"])),
    )
    out.obsm["spatial"] = np.asarray(st_data.obsm["spatial"], dtype=float)
    if inputs["truth_counts"] is not None:
        out.layers["counts"] = inputs["truth_counts"].astype(np.float32)
    info, wall, trained = {}, {}, {}
    for position, name in enumerate(methods):
        start = time.perf_counter()
        params = method_params(name, seed=seed, preset=preset, device=device, overrides=overrides)
        if name == "spot_depth" and inputs["st_counts_train"] is None:
            log.warning("spot_depth skipped: no raw ST counts")
            continue
        k = n_samples if name in uncertainty_methods else 0
        pred, interval, info[name] = fit_predict(name, inputs, params=params, n_samples=k, seed=seed, trained=trained,
                                                 hand_over_reference=position == len(methods) - 1)
        out.layers[name] = pred
        if interval is not None:
            for suffix, bound in zip(INTERVAL_SUFFIXES, interval):
                out.layers[name + suffix] = bound
        wall[name] = time.perf_counter() - start
        log.info("fold %d %s: %.1f s", fold, name, wall[name])
    out.uns["causalged_crossval"] = to_jsonable({
        "protocol": "heldout",
        "protocol_label": PROTOCOL_LABELS["heldout"],
        "fold": fold,
        "n_folds": len(split["folds"]),
        "split_seed": split.get("seed"),
        "seed": seed,
        "methods": [m for m in methods if m in out.layers],
        "n_samples": n_samples,
        "train_genes": inputs["train_genes"],
        "st_input_normalization": "training genes only (from raw counts)" if inputs["st_counts_train"] is not None else "training genes only (from log values)",
        "truth": "X = full-panel normalized ST (primary); layers['counts'] = raw counts (secondary)",
        "wall_time_s": wall,
        "method_info": {m: {k: v for k, v in i.items() if v is not None} for m, i in info.items()},
    })
    out.uns["default_method"] = DEFAULT_METHOD
    return out


def combine_folds(fold_results: Sequence[ad.AnnData]) -> ad.AnnData:
    """Stack fold files into spots x all held-out genes (each gene held out exactly once)."""
    if not fold_results:
        raise ValueError("no fold predictions to combine")
    folds = sorted(fold_results, key=lambda a: a.uns["causalged_crossval"]["fold"])
    seen = [int(a.uns["causalged_crossval"]["fold"]) for a in folds]
    if len(set(seen)) != len(seen):
        raise ValueError(f"fold files repeat folds: {seen}")
    methods = [m for m in folds[0].uns["causalged_crossval"]["methods"] if all(m in a.layers for a in folds)]
    layers = methods + [m + s for m in methods for s in INTERVAL_SUFFIXES if all(m + s in a.layers for a in folds)]
    if all("counts" in a.layers for a in folds):
        layers.append("counts")
    pieces = [ad.AnnData(X=a.X, obs=a.obs, var=a.var, layers={k: a.layers[k] for k in layers}) for a in folds]
    combined = ad.concat(pieces, axis=1, merge="first")
    combined.obsm["spatial"] = folds[0].obsm["spatial"]
    combined.uns["default_method"] = folds[0].uns.get("default_method", DEFAULT_METHOD)
    combined.uns["causalged_crossval"] = to_jsonable({
        "protocol": "heldout",
        "protocol_label": PROTOCOL_LABELS["heldout"],
        "folds": seen,
        "n_folds": folds[0].uns["causalged_crossval"]["n_folds"],
        "methods": methods,
        "seed": folds[0].uns["causalged_crossval"]["seed"],
        "wall_time_s": {m: float(sum(a.uns["causalged_crossval"]["wall_time_s"].get(m, 0.0) for a in folds)) for m in methods},
        "method_info_by_fold": {str(a.uns["causalged_crossval"]["fold"]): a.uns["causalged_crossval"]["method_info"] for a in folds},
    })
    return combined


def paper_inpainting(pred: np.ndarray, truth: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """The public code's scoring input: hide 30 % of each gene's non-zero true entries, write
    the true value back everywhere else (all zeros and 70 % of non-zeros), keep the prediction
    only at the hidden entries. Most of the result IS the truth: label every score from it."""
    out = np.array(truth, dtype=np.float64, copy=True)
    for g in range(truth.shape[1]):
        nonzero = np.flatnonzero(truth[:, g] != 0)
        hidden = rng.choice(nonzero, size=int(round(INPAINT_HIDDEN_FRACTION * len(nonzero))), replace=False) if len(nonzero) else nonzero
        out[hidden, g] = pred[hidden, g]
    return out


def noise_control(truth: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise over each gene's observed range: the control the paper protocol needs."""
    return rng.uniform(0.0, 1.0, truth.shape) * truth.max(axis=0, keepdims=True)


def load_inputs(sc_path: Path, st_path: Path, split_path: Path, *, sc_data=None) -> tuple[ad.AnnData, ad.AnnData, dict[str, Any]]:
    """Read the hvg-step outputs and check that the split's genes are in both; ``sc_data`` is
    the reference when the caller has opened it already (on disk, by ``read_reference``)."""
    sc_data = read_h5ad(sc_path, role="sc", layers=False) if sc_data is None else sc_data
    st_data = read_h5ad(st_path, role="st")
    split = load_split(split_path)
    shared = [g for fold in split["folds"] for g in fold]
    missing = [g for g in shared if g not in st_data.var_names or g not in sc_data.var_names]
    if missing:
        raise InputError(split_path, f"{len(missing)} fold genes are not in both inputs (e.g. {', '.join(missing[:3])})", "use the split written by the same hvg run as the .h5ad files")
    return sc_data, st_data, split


#: Columns of the default's per-fold choices (method info keys), in report order.
CHOICE_COLUMNS = ("k", "n_pcs", "ridge_kernel", "alpha", "spatial_weight", "spatial_neighbours", "spatial_view",
                  "inner_pcc_knn", "inner_pcc_ridge", "inner_pcc_blend", "inner_pcc_chosen")


def default_choices(sample: str, combined: ad.AnnData) -> pd.DataFrame | None:
    """One row per fold: what the default's inner CV chose there (None if it did not run)."""
    from causalged.methods import DEFAULT_METHOD

    rows = [{"Sample": f"{sample} | fold {fold}", **{c: info[DEFAULT_METHOD].get(c) for c in CHOICE_COLUMNS}}
            for fold, info in sorted(combined.uns["causalged_crossval"].get("method_info_by_fold", {}).items(), key=lambda kv: int(kv[0]))
            if DEFAULT_METHOD in info]
    return pd.DataFrame(rows) if rows else None
