"""The Python API: impute and cross-validate from AnnData objects in a notebook, with the pipeline's own code.

:func:`impute` fits a method on the genes both modalities measure and predicts the reference genes
the panel lacks, with the spread of its samples and, when asked, the held-out accuracy each gene is
expected to reach; :func:`crossvalidate` scores methods on held-out panel genes. Both call what the
train, impute, crossval and evaluate steps call (``causalged.imputation``, ``causalged.evaluation``),
so on the same preprocessed data a notebook and the impute step give the same predictions (a test
checks). Inputs
are raw counts (normalized here) or, with ``already_normalized=True``, log-normalized values; they
are never modified.
"""

from __future__ import annotations

import logging
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from causalged.errors import InputError
from causalged.methods import DEFAULT_EVAL_METHODS, DEFAULT_METHOD, MODEL_METHODS
from causalged.params import check_values

log = logging.getLogger(__name__)


def _prepare(sc: ad.AnnData, st: ad.AnnData, *, already_normalized: bool, case_insensitive: bool) -> tuple[ad.AnnData, ad.AnnData, list[str]]:
    """Normalized copies (ST restricted to the genes the reference has) and the shared genes, in ST order (as the hvg step)."""
    from causalged import preprocess
    from causalged.io import spatial_coords

    from causalged.formats import match_gene_ids

    sc_n = preprocess.normalize(sc.copy(), already_normalized=already_normalized)
    st_n = preprocess.normalize(st.copy(), already_normalized=already_normalized)
    match_gene_ids(sc_n, st_n)  # a reference indexed by Ensembl ids is matched through its symbol column, as the import step does
    st_n.obsm["spatial"] = spatial_coords(st_n)
    in_reference = set(preprocess.match_genes(sc_n, st_n, case_insensitive=case_insensitive))
    shared = [g for g in st_n.var_names if g in in_reference]
    return sc_n, st_n[:, shared].copy(), shared


def _targets(sc: ad.AnnData, shared: list[str], genes: Sequence[str] | None) -> list[str]:
    panel = set(shared)
    if genes is None:
        return [g for g in sc.var_names if g not in panel]
    genes = list(dict.fromkeys(map(str, genes)))
    unknown = [g for g in genes if g not in sc.var_names]
    if unknown:
        raise InputError(None, f"genes= names {len(unknown)} genes the reference does not have (e.g. {', '.join(unknown[:3])})",
                         "pass reference gene names (sc.var_names)")
    measured = [g for g in genes if g in panel]
    if measured:
        log.warning("%d requested genes are measured by the ST panel and are not imputed (e.g. %s)", len(measured), ", ".join(measured[:3]))
    return [g for g in genes if g not in panel]


def crossvalidate(sc: ad.AnnData, st: ad.AnnData, *, methods: str | Sequence[str] = DEFAULT_EVAL_METHODS, n_folds: int = 10, seed: int = 0,
                  n_samples: int = 8, already_normalized: bool = False, case_insensitive: bool = False, preset: str = "cpu",
                  device: str = "auto", epochs: int | None = None, sampler: str = "ddim", sampling_steps: int = 50,
                  inference_mode: str | None = None) -> pd.DataFrame:
    """Held-out-gene cross-validation of ``methods`` on the panel genes: one row per gene, method and truth.

    Each fold's genes are removed from the ST input and predicted from their scRNA-seq vectors
    alone. Columns: ``gene``, ``method``, ``fold``, ``protocol`` (always ``heldout``), ``truth``
    (``normalized``, and ``raw_counts`` from raw inputs), ``pcc``, ``ssim``, ``rmse``, ``js``;
    ``frame.attrs["protocol"]`` says so. Mean per method:
    ``frame[frame.truth == "normalized"].groupby("method").pcc.mean()``.
    """
    table, _, _ = _crossvalidate(sc, st, methods=methods, n_folds=n_folds, seed=seed, n_samples=n_samples, already_normalized=already_normalized,
                                 case_insensitive=case_insensitive, preset=preset, device=device, epochs=epochs, sampler=sampler,
                                 sampling_steps=sampling_steps, inference_mode=inference_mode)
    return table


def _crossvalidate(sc, st, *, methods, n_folds, seed, n_samples, already_normalized, case_insensitive, preset, device, epochs, sampler,
                   sampling_steps, inference_mode, prepared=None, targets=()):
    from causalged import preprocess
    from causalged.device import resolve_device
    from causalged.evaluation.crossval import PROTOCOL_LABELS, combine_folds, run_fold
    from causalged.evaluation.scoring import score_predictions
    from causalged.methods import parse_methods
    from causalged.steps.crossval import model_overrides

    check_values("crossval", dict(seed=seed, n_samples=n_samples, preset=preset, device=device, epochs=epochs, sampler=sampler,
           sampling_steps=sampling_steps, inference_mode=inference_mode))
    check_values("hvg", {"n_folds": n_folds})
    chosen = parse_methods(methods)
    resolve_device(device)
    sc_n, st_n, shared = prepared or _prepare(sc, st, already_normalized=already_normalized, case_insensitive=case_insensitive)
    split = preprocess.make_gene_splits(shared, target_genes=list(targets), n_folds=n_folds, seed=seed)
    overrides = model_overrides(epochs, sampler, sampling_steps, inference_mode)
    folds = [run_fold(sc_n, st_n, split, k, methods=chosen, seed=seed, n_samples=n_samples, preset=preset, device=device, overrides=overrides)
             for k in range(split["n_folds"])]
    combined = combine_folds(folds)
    metrics = score_predictions(combined, seed=seed)
    metrics.attrs["protocol"] = PROTOCOL_LABELS["heldout"]
    return metrics, combined, sc_n


def impute(sc: ad.AnnData, st: ad.AnnData, *, method: str = DEFAULT_METHOD, genes: Sequence[str] | None = None, n_samples: int = 8,
           seed: int = 0, n_folds: int | None = None, already_normalized: bool = False, case_insensitive: bool = False, preset: str = "cpu",
           device: str = "auto", epochs: int | None = None, sampler: str = "ddim", sampling_steps: int = 50,
           inference_mode: str | None = None) -> ad.AnnData:
    """Impute the reference genes the ST panel did not measure (or ``genes``), at every spot.

    Returns spots x imputed genes:

    - ``X``: mean prediction over ``n_samples`` samples, on the ST log-normalized scale;
    - ``layers["std"]``: per spot and gene, the standard deviation of the samples;
    - ``var["expected_pcc"]`` and ``var["trust"]`` (high / medium / low): the held-out PCC each
      gene is expected to reach, estimated from an ``n_folds``-fold cross-validation of
      ``method`` on the panel genes (held-out protocol); only when ``n_folds`` is given;
    - ``obs``, ``obsm["spatial"]``: those of ``st``; ``uns["causalged"]["impute"]``: what ran.
    """
    from causalged import preprocess
    from causalged.evaluation.trust import trust_flag, trust_table
    from causalged.imputation import expected_pcc, predictor, refit_params, train_diffusion
    from causalged.methods import parse_methods

    check_values("impute", dict(seed=seed, n_samples=n_samples, device=device, sampler=sampler, sampling_steps=sampling_steps,
                                inference_mode=inference_mode))
    check_values("train", {"method": method, "preset": preset, "epochs": epochs})
    if n_samples < 1:
        raise InputError(None, f"n_samples must be at least 1, got {n_samples}", "pass n_samples=1 or more")
    parse_methods([method])
    prepared = _prepare(sc, st, already_normalized=already_normalized, case_insensitive=case_insensitive)
    sc_n, st_n, shared = prepared
    targets = _targets(sc_n, shared, genes)
    out = ad.AnnData(X=np.zeros((st_n.n_obs, len(targets)), dtype=np.float32), obs=st.obs.copy(),
                     var=pd.DataFrame(index=pd.Index(targets, dtype=str)))
    out.obsm["spatial"] = np.asarray(st_n.obsm["spatial"], dtype=float)
    out.layers["std"] = np.zeros_like(out.X)
    split = preprocess.make_gene_splits(shared, seed=seed, n_folds=n_folds or 10)
    fit_genes = split["train"] + split["val"] + split["test"]  # every shared gene, in the seeded order the train step uses
    trained = None
    if method in MODEL_METHODS:
        trained = train_diffusion(method, sc_n, st_n, fit_genes, preset=preset, epochs=epochs, device=device, seed=seed, progress=False)
    predict, sampling = predictor(method, sc_n, st_n, fit_genes, targets, params=refit_params(method, seed=seed, device=device), model=trained,
                                  n_samples=n_samples, seed=seed, sampler=sampler, sampling_steps=sampling_steps or None,
                                  inference_mode=inference_mode)
    if targets:
        mean, samples = predict(0, len(targets))
        out.X = np.asarray(mean, dtype=np.float32)
        out.layers["std"] = np.asarray(samples, dtype=np.float32).std(axis=0)
    trust = None
    if n_folds is not None:
        metrics, combined, _ = _crossvalidate(sc, st, methods=[method], n_folds=n_folds, seed=seed, n_samples=n_samples,
                                              already_normalized=already_normalized, case_insensitive=case_insensitive, preset=preset,
                                              device=device, epochs=epochs, sampler=sampler, sampling_steps=sampling_steps,
                                              inference_mode=inference_mode, prepared=prepared, targets=targets)
        trust, _ = trust_table(sc_n, combined, metrics, method=method, target_genes=targets)
        out.var["expected_pcc"] = expected_pcc(trust, method, targets)
        out.var["trust"] = trust_flag(out.var["expected_pcc"]).to_numpy()
    out.uns["causalged"] = {"impute": {"method": method, "n_samples": n_samples, "seed": seed, "n_fit_genes": len(shared),
                                       "n_targets": len(targets), "n_folds": n_folds, "protocol": "heldout" if n_folds else None,
                                       "sampler": sampler if method in MODEL_METHODS else None, "mode": sampling.get("mode"),
                                       "reference_pooled": sampling.get("reference_pooled")}}
    return out


def read_spatial(path, *, bin_size: int = 8) -> ad.AnnData:
    """Spatial data as people have it (an instrument folder, a SpatialData ``.zarr``, an .h5ad) as AnnData:
    raw counts in ``X``, global positions in ``obsm["spatial"]``, controls dropped; how it was read in
    ``uns["causalged"]["import"]["st"]`` (the import step's reader, :mod:`causalged.formats`)."""
    from causalged import formats
    from causalged.io import record_step

    adata, info = formats.read_spatial(path, bin_size=bin_size)
    record_step(adata, "import", {"st": {**info, "input": str(path)}})
    return adata


def read_reference(path, *, gene_symbols: str | None = None) -> ad.AnnData:
    """A reference as people have it (.h5ad, CELLxGENE's too; Cell Ranger .h5 or matrix folder; .loom) with its raw
    counts in ``X``; name its genes as a panel does with :func:`causalged.formats.match_gene_ids` (``impute`` does it)."""
    from causalged import formats
    from causalged.io import record_step

    adata, info = formats.read_reference(path, gene_symbols=gene_symbols)
    record_step(adata, "import", {"sc": {**info, "input": str(path)}})
    return adata


__all__ = ["crossvalidate", "impute", "read_reference", "read_spatial"]
