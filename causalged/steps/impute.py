"""Imputation step: the target genes at every spot, with their spread and expected accuracy.

Reads the hvg step's outputs and a model folder from the train step; writes
``<sample>.imputed.zarr`` (the same values as a SpatialData table annotating the spots, for
SpatialData tools) beside ``<sample>.imputed.h5ad`` (documented in docs/output.md: ``X`` mean over samples on the ST
log-normalized scale, ``layers["std"]``, ``var["expected_pcc"]`` and ``var["trust"]`` from the
evaluation's trust table, ``uns["causalged"]["impute"]``), plus the target maps and, on simulated
data, the scores against the simulator's truth for the report. Genes are predicted and written a
block at a time, so memory does not grow with the number of targets.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from causalged.arrays import genes_per_block
from causalged.errors import InputError
from causalged.methods import MODEL_METHODS

log = logging.getLogger(__name__)


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/impute declares); maps and truth table for the report."""
    outdir = Path(outdir)
    return {"h5ad": outdir / f"{sample}.imputed.h5ad", "zarr": outdir / f"{sample}.imputed.zarr", "maps": outdir / "figures" / f"{sample}.target_maps.png",
            "truth_mqc": outdir / f"{sample}.simulated_truth_mqc.tsv"}


def run(*, sample: str, sc: Path, st: Path, model: Path, trust: Path | None = None, outdir: Path = Path("."), seed: int = 0,
        device: str = "auto", n_samples: int = 8, sampler: str = "ddim", sampling_steps: int = 50, inference_mode: str | None = None,
        chunk_genes: int = 0) -> Path:
    """Predict the target genes at every spot with a model folder from the train step.

    ``trust`` is the ``<sample>.gene_trust.csv`` of the evaluation step: its expected accuracy of
    each target gene for this method lands in ``var["expected_pcc"]`` (NaN without it).
    ``sampling_steps`` 0 means all T (ddpm); ``chunk_genes`` 0 picks the block size from memory.
    """
    from causalged.device import resolve_device
    from causalged.evaluation.figures import target_map_genes
    from causalged.evaluation.targets import block_truth_scores, requested_genes, write_target_report
    from causalged.evaluation.trust import trust_flag
    from causalged.formats import spatial_region, write_spatialdata
    from causalged.imputation import expected_pcc, fingerprint, predictor, require_genes
    from causalged.io import check_writable, ensure_not_input, read_h5ad, record_step, write_h5ad_columns_atomic
    from causalged.stream import read_reference

    if n_samples < 1:
        raise InputError(None, f"--n-samples must be at least 1 for imputation, got {n_samples}", "pass --n-samples 1 or more")
    resolve_device(device)  # --device cuda without a GPU is an error, whatever the method
    check_writable(outdir)
    model_dir = Path(model)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise InputError(model_dir, "no config.json in the model folder", "pass the <sample>.model folder written by `causalged train`")
    config = json.loads(config_path.read_text())
    out_path = outputs(sample, outdir)["h5ad"]
    ensure_not_input(out_path, [sc, st])
    st_data = read_h5ad(st, role="st")
    trust_table = pd.read_csv(trust) if trust is not None else None
    with read_reference(sc, layers=False) as sc_data:  # on disk above the stream limit: read in blocks of cells
        if "causalged_target" not in sc_data.var:
            raise InputError(sc, 'the reference has no var["causalged_target"] column', "pass the <sample>.sc.hvg.h5ad written by the hvg step")
        targets = list(sc_data.var_names[sc_data.var["causalged_target"].to_numpy(dtype=bool)])
        method, data = config["method"], config.get("data", {})
        fit_genes = data.get("fit_genes", [])
        loaded = None
        if method in MODEL_METHODS:
            for key, adata, path in (("sc_fingerprint", sc_data, sc), ("st_fingerprint", st_data, st)):
                if data.get(key) and data[key] != fingerprint(adata.obs_names):
                    raise InputError(path, "its cells/spots (names or order) differ from those the model was trained on",
                                     "impute with the same .h5ad files that `causalged train` used, or retrain")
            if targets:
                from causalged.model import CausalGeD

                loaded = CausalGeD.load(model_dir, device=device)
        else:
            require_genes(sc_data, fit_genes, path=sc, what="fitting")
            require_genes(st_data, fit_genes, path=st, what="fitting")
        if not targets:
            log.warning("%s: the reference has no gene outside the ST panel: nothing to impute (writing an empty result)", sc)
        skeleton = ad.AnnData(obs=st_data.obs.copy(), var=pd.DataFrame(index=pd.Index(targets, dtype=str)))
        skeleton.obsm["spatial"] = np.asarray(st_data.obsm["spatial"], dtype=float)
        skeleton.var["expected_pcc"] = expected_pcc(trust_table, method, targets, source=trust)
        skeleton.var["trust"] = trust_flag(skeleton.var["expected_pcc"]).to_numpy()
        skeleton.uns["causalged"] = dict(st_data.uns.get("causalged", {}))
        predict, sampling = predictor(method, sc_data, st_data, fit_genes, targets, params=config.get("params", {}), model=loaded,
                                      n_samples=n_samples, seed=seed, sampler=sampler, sampling_steps=sampling_steps or None,
                                      inference_mode=inference_mode, model_dir=model_dir)
        sc_genes = ad.AnnData(var=sc_data.var.copy())  # what the report needs once the matrices are taken
    block_genes = genes_per_block(st_data.n_obs, n_samples, chunk_genes or None)

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
            "steps": sampling_steps if method in MODEL_METHODS else None, "mode": sampling.get("mode"),
            "model": str(model_dir), "n_targets": len(targets), "n_fit_genes": len(fit_genes), "genes_per_block": block_genes,
            "clipped_fraction": sampling.get("clipped_fraction"), "reference_pooled": sampling.get("reference_pooled"),
        })

    write_h5ad_columns_atomic(skeleton, out_path, blocks())
    region, instance_key = spatial_region(st_data)
    # the same result for SpatialData tools (napari-spatialdata, squidpy); skipped, with a warning, above its in-memory limit
    write_spatialdata(out_path, outputs(sample, outdir)["zarr"], region=region, instance_key=instance_key)
    log.info("%s: imputed %d genes at %d spots with %s -> %s", sample, len(targets), st_data.n_obs, method, out_path)
    return out_path


def _report_safely(sample: str, what: str, function, *args, **kwargs):
    """The report's view of the targets must never sink the imputation itself."""
    try:
        return function(*args, **kwargs)
    except Exception as err:
        log.warning("%s: %s (%s: %s)", sample, what, type(err).__name__, err)
        return None
