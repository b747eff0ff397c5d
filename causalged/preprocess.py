"""Preprocessing (paper section IV-A): gene matching, QC, normalization, HVG selection, gene splits.

Keys written (documented in docs/output.md):

- ``.uns["causalged"]["qc" | "normalize" | "hvg"]``: parameters and counts of each step.
- ``.layers["counts"]``: raw counts, kept by :func:`normalize`; ``X`` becomes log1p of
  counts scaled to the median total per observation (equation 4 of the paper).
- sc ``.var``: ``highly_variable`` (scanpy, ``flavor="seurat"`` on the log-normalized data),
  ``causalged_shared`` (also in the ST panel: the genes a model can train on),
  ``causalged_target`` (not in the ST panel: the genes to impute),
  ``causalged_requested`` (named in the samplesheet's gene list).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from causalged.errors import InputError
from causalged.io import RowBlocks, record_step
from causalged.stream import BackedReference

log = logging.getLogger(__name__)

#: Genes in a typical whole-transcriptome reference; the paper's 500-gene cell threshold assumes one.
WHOLE_TRANSCRIPTOME_GENES = 20_000
#: Every method fits on at least this many genes (methods.base.Imputer.fit), in each fold as in production.
MIN_TRAINING_GENES = 2
#: Shared genes needed so that each of (at least) 2 folds still leaves MIN_TRAINING_GENES to train on.
MIN_SHARED_GENES = MIN_TRAINING_GENES + 1


# --------------------------------------------------------------------------- gene matching
def match_genes(sc_data: ad.AnnData, st_data: ad.AnnData, *, case_insensitive: bool = False, st_path: str | Path | None = None) -> list[str]:
    """Make ST gene names match the scRNA-seq names and return the shared genes (sc order).

    With ``case_insensitive=True`` an ST gene whose name differs from a reference gene only by
    capitalisation (mouse ``Gad1`` vs human ``GAD1``) is renamed to the reference spelling, so
    every later step can match names exactly.
    """
    renamed = 0
    if case_insensitive:
        by_upper: dict[str, list[str]] = {}
        for name in sc_data.var_names:
            by_upper.setdefault(name.upper(), []).append(name)
        new_names = []
        for name in st_data.var_names:
            candidates = by_upper.get(name.upper(), [])
            if name not in sc_data.var_names and len(candidates) == 1:
                new_names.append(candidates[0])
                renamed += 1
            else:
                new_names.append(name)
        clashes = sorted({n for n in new_names if new_names.count(n) > 1})
        if clashes:  # e.g. Gad1 and GAD1 both in the panel: one of them would be lost
            raise InputError(st_path, f"with --case-insensitive, ST genes differing only in capitalisation become the same gene ({', '.join(clashes[:5])})",
                             "drop one spelling of each from the ST panel, or match names exactly (without --case-insensitive)")
        st_data.var_names = pd.Index(new_names)
    shared = [g for g in sc_data.var_names if g in set(st_data.var_names)]
    if not shared:
        hint = "" if case_insensitive else " or pass --case-insensitive if only capitalisation differs (e.g. Gad1 vs GAD1)"
        raise InputError(
            st_path,
            f"no gene of the ST panel ({st_data.n_vars} genes, e.g. {', '.join(map(str, st_data.var_names[:3]))}) "
            f"is in the scRNA-seq reference (e.g. {', '.join(map(str, sc_data.var_names[:3]))})",
            f"use the same gene identifiers (symbols or Ensembl ids) in both files{hint}",
        )
    if renamed:
        log.info("renamed %d ST genes to the reference's capitalisation", renamed)
    return shared


# --------------------------------------------------------------------------- QC
def effective_min_genes(min_genes: int, n_genes: int) -> int:
    """Scale a whole-transcriptome detected-gene threshold down for a small reference.

    A cell must detect the same fraction of the reference's genes as the paper's threshold
    asks of a whole transcriptome (500 of ~20,000 genes = 2.5 %), and at least one gene.
    """
    if n_genes >= WHOLE_TRANSCRIPTOME_GENES:
        return min_genes
    return max(1, min(min_genes, round(min_genes * n_genes / WHOLE_TRANSCRIPTOME_GENES)))


def qc(
    sc_data: ad.AnnData,
    st_data: ad.AnnData,
    *,
    min_genes_cell: int = 500,
    min_genes_spot: int = 1,
    min_cells_gene: int = 1,
    scale_min_genes: bool = True,
    case_insensitive: bool = False,
    sc_path: str | Path | None = None,
    st_path: str | Path | None = None,
) -> tuple[ad.AnnData, ad.AnnData, dict[str, Any]]:
    """Filter low-quality cells, spots and undetected genes with scanpy; return a summary.

    Cells with fewer than ``min_genes_cell`` detected genes, spots with fewer than
    ``min_genes_spot`` and genes detected in fewer than ``min_cells_gene`` observations of a
    modality are removed. With ``scale_min_genes`` the cell threshold is scaled for references
    with fewer genes than a whole transcriptome (see :func:`effective_min_genes`).
    """
    match_genes(sc_data, st_data, case_insensitive=case_insensitive, st_path=st_path)
    used_min_genes_cell = effective_min_genes(min_genes_cell, sc_data.n_vars) if scale_min_genes else min_genes_cell
    if used_min_genes_cell != min_genes_cell:
        log.warning(
            "the reference has only %d genes: the cell threshold of %d detected genes assumes a whole transcriptome "
            "and would remove most cells; using %d instead (same fraction of genes). Pass --no-scale-min-genes to keep %d.",
            sc_data.n_vars, min_genes_cell, used_min_genes_cell, min_genes_cell,
        )
    summary: dict[str, Any] = {
        "min_genes_cell_requested": min_genes_cell,
        "min_genes_cell_used": used_min_genes_cell,
        "min_genes_spot": min_genes_spot,
        "min_cells_gene": min_cells_gene,
        "case_insensitive": case_insensitive,
    }
    out = {}
    for role, data, min_genes, path in (("sc", sc_data, used_min_genes_cell, sc_path), ("st", st_data, min_genes_spot, st_path)):
        filter_role = _filter_blocks if isinstance(data, BackedReference) else _filter_in_memory
        out[role], summary[role] = filter_role(data, min_genes=min_genes, min_cells_gene=min_cells_gene, role=role, path=path)
    dropped = [g for g in st_data.var_names if g not in set(out["st"].var_names)]
    if dropped:
        log.warning("%s: QC removed %d ST panel genes detected in fewer than %d spots (%s); they were measured, so they are "
                    "never imputed as targets", st_path or "ST data", len(dropped), min_cells_gene, ", ".join(dropped[:10]))
    summary["st_genes_dropped"] = dropped
    summary["inputs"] = {"sc": None if sc_path is None else str(sc_path), "st": None if st_path is None else str(st_path)}
    shared = [g for g in annotations(out["sc"]).var_names if g in set(out["st"].var_names)]
    if not shared:
        raise InputError(st_path, "after QC no gene is detected in both the ST panel and the reference", "lower --min-cells-gene or check the inputs")
    if len(shared) < 10:
        log.warning("only %d genes are shared between the ST panel and the reference; accuracy estimates will be noisy", len(shared))
    summary["n_shared_genes"] = len(shared)
    for data in out.values():
        record_step(annotations(data), "qc", summary)
    return out["sc"], out["st"], summary


def annotations(data: ad.AnnData | RowBlocks) -> ad.AnnData:
    """Where a step's output keeps obs, var and uns: the AnnData itself, or the skeleton of row blocks."""
    return data.skeleton if isinstance(data, RowBlocks) else data


def _filter_in_memory(data: ad.AnnData, *, min_genes: int, min_cells_gene: int, role: str, path) -> tuple[ad.AnnData, dict]:
    before = _counts_summary(data.X)
    # masks first, then one copy of what is kept: the whole input is never copied
    keep_obs, genes_per_obs = sc.pp.filter_cells(data, min_genes=min_genes, inplace=False)
    _refuse_empty(int(keep_obs.sum()), data.n_obs, role=role, min_genes=min_genes, best=before["max_genes_per_obs"], path=path)
    filtered = data[keep_obs].copy()
    filtered.obs["n_genes"] = genes_per_obs[keep_obs]
    sc.pp.filter_genes(filtered, min_cells=min_cells_gene)
    return filtered, _role_summary(data.n_obs, data.n_vars, filtered.n_obs, filtered.n_vars, before, _counts_summary(filtered.X))


def _filter_blocks(data: BackedReference, *, min_genes: int, min_cells_gene: int, role: str, path) -> tuple[RowBlocks, dict]:
    """:func:`_filter_in_memory` for a reference on disk: scanpy's filters block by block in a
    first pass (which cells pass, and in how many of them each gene is detected), the kept
    part's summary in a second, and the kept matrix written block by block in a third."""
    keep_obs, genes_per_obs, totals = [], [], []
    cells_per_gene = np.zeros(data.n_vars)
    for _, block in data.blocks(desc="QC, pass 1 of 3 (filters)"):
        keep, n_genes = sc.pp.filter_cells(block["X"], min_genes=min_genes, inplace=False)
        keep_obs.append(keep)
        genes_per_obs.append(n_genes)
        totals.append(np.asarray(block["X"].sum(axis=1)).ravel())
        cells_per_gene += sc.pp.filter_genes(block["X"][keep], min_cells=0, inplace=False)[1]
    keep_obs, genes_per_obs = np.concatenate(keep_obs), np.concatenate(genes_per_obs)
    before = _counts_summary_of(np.concatenate(totals), genes_per_obs)
    _refuse_empty(int(keep_obs.sum()), data.n_obs, role=role, min_genes=min_genes, best=before["max_genes_per_obs"], path=path)
    keep_genes = cells_per_gene >= min_cells_gene  # scanpy's filter_genes rule
    skeleton = data.skeleton[keep_obs, keep_genes].copy()
    skeleton.obs["n_genes"] = genes_per_obs[keep_obs]
    skeleton.var["n_cells"] = cells_per_gene[keep_genes].astype(int)

    def kept_blocks(desc: str = "QC, pass 3 of 3 (writing)"):
        for rows, block in data.blocks(desc=desc):
            yield {"X": block["X"][keep_obs[rows]][:, keep_genes]}

    kept_totals, kept_detected = [], []
    for block in kept_blocks("QC, pass 2 of 3 (summary)"):
        kept_totals.append(np.asarray(block["X"].sum(axis=1)).ravel())
        kept_detected.append(np.asarray((block["X"] > 0).sum(axis=1)).ravel())
    after = _counts_summary_of(np.concatenate(kept_totals), np.concatenate(kept_detected))
    return RowBlocks(skeleton, kept_blocks), _role_summary(data.n_obs, data.n_vars, skeleton.n_obs, skeleton.n_vars, before, after)


def _refuse_empty(n_kept: int, n_obs: int, *, role: str, min_genes: int, best: int, path) -> None:
    if n_kept == 0:
        noun = "cells" if role == "sc" else "spots"
        option = "--min-genes-cell" if role == "sc" else "--min-genes-spot"
        raise InputError(
            path,
            f"QC removed every one of the {n_obs} {noun} (threshold: {min_genes} detected genes; the best {noun[:-1]} detects {best})",
            f"lower {option}, or check that the matrix holds counts with genes as columns",
        )


def _role_summary(n_obs_before: int, n_genes_before: int, n_obs_after: int, n_genes_after: int, before: dict, after: dict) -> dict:
    return {
        "n_obs_before": n_obs_before, "n_obs_after": n_obs_after,
        "n_genes_before": n_genes_before, "n_genes_after": n_genes_after,
        "median_counts_before": before["median_counts"], "median_counts_after": after["median_counts"],
        "median_genes_before": before["median_genes"], "median_genes_after": after["median_genes"],
    }


def _counts_summary(matrix) -> dict[str, float]:
    return _counts_summary_of(np.asarray(matrix.sum(axis=1)).ravel(), np.asarray((matrix > 0).sum(axis=1)).ravel())


def _counts_summary_of(totals: np.ndarray, detected: np.ndarray) -> dict[str, float]:
    return {
        "median_counts": float(np.median(totals)) if totals.size else 0.0,
        "median_genes": float(np.median(detected)) if detected.size else 0.0,
        "max_genes_per_obs": int(detected.max()) if detected.size else 0,
    }


def qc_table(sample: str, summary: dict[str, Any]) -> pd.DataFrame:
    """The per-sample QC summary as rows for the MultiQC table (one row per modality)."""
    rows = []
    for role, label in (("sc", "scRNA-seq"), ("st", "ST")):
        s = summary[role]
        rows.append({
            "Sample": f"{sample} ({label})",
            "observations before": s["n_obs_before"], "observations after": s["n_obs_after"],
            "genes before": s["n_genes_before"], "genes after": s["n_genes_after"],
            "median counts": s["median_counts_after"], "median detected genes": s["median_genes_after"],
            "min detected genes used": summary["min_genes_cell_used"] if role == "sc" else summary["min_genes_spot"],
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- normalization
def is_integer_matrix(matrix, *, block: int = 2**24) -> bool:
    """Whether every stored value is a whole number; checked in blocks, so no full-size temporary."""
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()
    return all(bool(np.all(np.mod(values[i:i + block], 1) == 0)) for i in range(0, values.size, block))


def normalize(data: ad.AnnData, *, already_normalized: bool = False, path: str | Path | None = None) -> ad.AnnData:
    """Equation (4): log1p of counts scaled to the median total per observation (scanpy).

    Raw counts are kept in ``layers["counts"]``. Non-integer input is refused (it has already
    been normalized, and normalizing twice distorts it) unless ``already_normalized`` says the
    values are log-normalized already, in which case they are used as they are. A reference on
    disk (:class:`~causalged.stream.BackedReference`) is normalized block by block.
    """
    if isinstance(data, BackedReference):
        return _normalize_blocks(data, already_normalized=already_normalized, path=path)
    data = data.copy()
    if already_normalized:
        data.X = _as_float32(data.X)
        record_step(data, "normalize", {"method": "none (input declared already normalized)", "already_normalized": True})
        return data
    _refuse_normalized(data.X, path=path)
    totals = np.asarray(data.X.sum(axis=1)).ravel()
    target = float(np.median(totals))
    scaled = sc.pp.normalize_total(data, target_sum=None, inplace=False)["X"]  # a new matrix: X itself stays the counts
    data.layers["counts"] = data.X  # the counts are kept as they are, not copied again
    data.X = _as_float32(sc.pp.log1p(scaled))
    record_step(data, "normalize", {"method": "normalize_total(median) + log1p", "target_sum": target, "already_normalized": False})
    return data


def _normalize_blocks(data: BackedReference, *, already_normalized: bool, path) -> RowBlocks:
    """:func:`normalize` in two passes over the blocks: the median total (and the integer
    check), then each block scaled to it with scanpy, its counts kept beside it."""
    skeleton = data.skeleton.copy()
    if already_normalized:
        record_step(skeleton, "normalize", {"method": "none (input declared already normalized)", "already_normalized": True})
        return RowBlocks(skeleton, lambda: ({"X": _as_float32(block["X"])} for _, block in data.blocks(desc="normalize (writing)")))
    totals = []
    for _, block in data.blocks(desc="normalize, pass 1 of 2 (totals)"):
        _refuse_normalized(block["X"], path=path)
        totals.append(np.asarray(block["X"].sum(axis=1)).ravel())
    target = float(np.median(np.concatenate(totals)))
    record_step(skeleton, "normalize", {"method": "normalize_total(median) + log1p", "target_sum": target, "already_normalized": False})

    def normalized():
        for _, block in data.blocks(desc="normalize, pass 2 of 2 (writing)"):
            scaled = sc.pp.normalize_total(ad.AnnData(X=block["X"]), target_sum=target, inplace=False)["X"]
            yield {"X": _as_float32(sc.pp.log1p(scaled)), "counts": block["X"]}

    return RowBlocks(skeleton, normalized)


def _refuse_normalized(matrix, *, path) -> None:
    if not is_integer_matrix(matrix):
        raise InputError(
            path,
            "the matrix holds non-integer values, so it looks normalized already; normalizing it again would distort it",
            "provide raw counts, or pass --already-normalized if these are log-normalized values to use as they are",
        )


def normalize_counts(counts, *, target_sum: float | None = None) -> np.ndarray:
    """Equation (4) on a bare counts matrix (rows = observations), dense float32 out.

    Used by cross-validation to normalize the ST input of a fold from its training genes only:
    pass those columns, and the library size then ignores the held-out genes.
    """
    tmp = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, dtype=np.float32).copy())
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return np.asarray(tmp.X.toarray() if sp.issparse(tmp.X) else tmp.X, dtype=np.float32)


def _as_float32(matrix):
    return matrix.astype(np.float32) if matrix.dtype != np.float32 else matrix


# --------------------------------------------------------------------------- HVG
#: Above this many cells, a reference on disk has its gene variability estimated on a seeded
#: sample of this many cells (bounded memory; an in-memory reference always uses every cell).
VARIABILITY_CELLS = 100_000

def select_hvg(
    sc_data: ad.AnnData,
    st_data: ad.AnnData,
    *,
    top_fraction: float = 0.25,
    requested_genes: Sequence[str] | None = None,
) -> tuple[ad.AnnData, ad.AnnData, dict[str, Any]]:
    """Keep the top ``top_fraction`` most variable reference genes, the ST panel and requested genes.

    Variability is scanpy's ``highly_variable_genes(flavor="seurat")`` on the log-normalized
    reference (dispersion normalized within mean bins). The reference is subset to the union;
    the ST data to the panel genes present in the reference (the trainable, shared genes). A
    reference on disk is subset block by block, its variability estimated on at most
    :data:`VARIABILITY_CELLS` cells.
    """
    if not 0 < top_fraction <= 1:
        raise InputError(None, f"--top-fraction must be in (0, 1], got {top_fraction}", "pass a fraction such as 0.25")
    n_top = max(1, math.ceil(top_fraction * sc_data.n_vars))
    backed = isinstance(sc_data, BackedReference)
    # scanpy reads only X: a view-free AnnData around the same matrix, not a copy of the whole
    # reference (X and its counts layer), keeps the step's peak near one extra X (its expm1 copy).
    matrix, variability_cells = _variability_rows(sc_data) if backed else (sc_data.X, sc_data.n_obs)
    stats = ad.AnnData(X=matrix, var=pd.DataFrame(index=sc_data.var_names))
    sc.pp.highly_variable_genes(stats, n_top_genes=n_top, flavor="seurat")
    del matrix
    panel = set(st_data.var_names)
    # panel genes QC removed (detected in no spot) were measured: imputing them would pass a measurement off as a prediction
    measured_dropped = set(st_data.uns.get("causalged", {}).get("qc", {}).get("st_genes_dropped", []))
    requested = list(dict.fromkeys(requested_genes or []))
    missing = [g for g in requested if g not in sc_data.var_names]
    if missing:
        log.warning("%d requested genes are not in the reference and cannot be imputed: %s", len(missing), ", ".join(missing[:10]))
    not_imputed = sorted(set(requested) & measured_dropped)
    if not_imputed:
        log.warning("%d requested genes are in the ST panel but were detected in no spot (removed by QC); they are not imputed: %s",
                    len(not_imputed), ", ".join(not_imputed[:10]))
    requested_set = set(requested) - set(missing)
    reference = sc_data.skeleton if backed else sc_data
    var = pd.concat([reference.var.drop(columns=[c for c in stats.var if c in reference.var]), stats.var], axis=1)
    var["causalged_shared"] = var_names_in(reference, panel)
    var["causalged_requested"] = var_names_in(reference, requested_set)
    keep = ((var["highly_variable"] | var["causalged_shared"] | var["causalged_requested"]) & ~var_names_in(reference, measured_dropped)).to_numpy()
    sc_out = _subset_blocks(sc_data, keep) if backed else sc_data[:, keep].copy()
    kept = annotations(sc_out)
    kept.var = var[keep].copy()
    kept.var["causalged_target"] = ~kept.var["causalged_shared"]
    shared = list(kept.var_names[kept.var["causalged_shared"].to_numpy()])
    st_out = st_data[:, shared].copy()
    summary = {
        "flavor": "seurat (log-normalized data)",
        "top_fraction": top_fraction,
        "n_reference_genes": sc_data.n_vars,
        "n_highly_variable": int(var["highly_variable"].sum()),
        "n_cells_for_variability": variability_cells,
        "n_kept": kept.n_vars,
        "n_shared": len(shared),
        "n_targets": int(kept.var["causalged_target"].sum()),
        "n_requested": len(requested),
        "requested_missing": missing,
        "st_genes_dropped_not_targets": sorted(measured_dropped & set(sc_data.var_names)),
    }
    for data in (kept, st_out):
        record_step(data, "hvg", summary)
    return sc_out, st_out, summary


def _variability_rows(data: BackedReference) -> tuple[sp.csr_matrix, int]:
    """The rows scanpy estimates gene variability from: all of them up to :data:`VARIABILITY_CELLS`,
    else a seeded sample of that many (per-gene means and dispersions settle long before)."""
    n = min(data.n_obs, VARIABILITY_CELLS)
    chosen = np.zeros(data.n_obs, dtype=bool)
    chosen[np.random.default_rng(0).choice(data.n_obs, n, replace=False)] = True
    parts = [block["X"][chosen[rows]] for rows, block in data.blocks(desc="gene variability (sampling cells)")]
    return sp.vstack(parts, format="csr"), n


def _subset_blocks(data: BackedReference, keep: np.ndarray) -> RowBlocks:
    """The kept genes of every matrix of a reference on disk, block by block."""
    keys = tuple(data.matrices)

    def kept():
        for _, block in data.blocks(keys, desc="gene selection (writing)"):
            yield {key: matrix[:, keep] for key, matrix in block.items()}

    return RowBlocks(data.skeleton[:, keep].copy(), kept)


def var_names_in(data: ad.AnnData, names: set[str]) -> pd.Series:
    return pd.Series(data.var_names.isin(list(names)), index=data.var_names)


def hvg_table(sample: str, summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Sample": sample,
        "reference genes": summary["n_reference_genes"],
        "highly variable": summary["n_highly_variable"],
        "shared (trainable)": summary["n_shared"],
        "imputation targets": summary["n_targets"],
        "requested missing": len(summary["requested_missing"]),
    }])


# --------------------------------------------------------------------------- gene splits
def make_gene_splits(
    shared_genes: Sequence[str],
    *,
    target_genes: Sequence[str] = (),
    seed: int = 0,
    n_folds: int = 10,
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1),
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Seeded 70/20/10 train/validation/test split and K folds over the shared genes.

    ``n_folds`` is capped at the number of shared genes; folds are disjoint and together cover
    every shared gene exactly once. Both use one seeded permutation, so they are reproducible.
    Too few genes for that is an :class:`InputError` naming ``path`` (the ST data).
    """
    genes = list(shared_genes)
    if len(genes) < MIN_SHARED_GENES:
        raise InputError(path, f"only {len(genes)} genes are shared between the ST panel and the reference (after QC)",
                         f"at least {MIN_SHARED_GENES} shared genes are needed, so that every cross-validation fold keeps "
                         f"{MIN_TRAINING_GENES} genes to learn from: use a larger ST panel or check the gene names")
    if abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    order = [genes[i] for i in rng.permutation(len(genes))]
    n_val = max(1, round(fractions[1] * len(genes))) if len(genes) >= 3 else 0
    n_test = max(1, round(fractions[2] * len(genes))) if len(genes) >= 3 else 1
    n_train = len(genes) - n_val - n_test
    k = max(2, min(n_folds, len(genes)))
    folds = [list(chunk) for chunk in np.array_split(np.array(order, dtype=object), k)]
    if len(genes) - max(map(len, folds)) < MIN_TRAINING_GENES:
        raise InputError(path, f"with {k} folds over {len(genes)} shared genes a fold would leave fewer than {MIN_TRAINING_GENES} genes to learn from",
                         f"pass --n-folds {len(genes)} (one gene per fold)")
    return {
        "seed": seed,
        "shared_genes": genes,
        "target_genes": list(target_genes),
        "train": order[:n_train],
        "val": order[n_train:n_train + n_val],
        "test": order[n_train + n_val:],
        "n_folds": k,
        "folds": [[str(g) for g in fold] for fold in folds],
    }


def load_split(path: str | Path) -> dict[str, Any]:
    """Read a split written by the hvg step and check it is whole."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise InputError(path, "the gene split file does not exist", "run the hvg step first (it writes <sample>.split.json)") from err
    except json.JSONDecodeError as err:
        raise InputError(path, f"the gene split file is not valid JSON ({err})", "re-run the hvg step to rewrite it") from err
    required = {"seed", "shared_genes", "target_genes", "train", "val", "test", "n_folds", "folds"}
    if not required <= set(split):
        raise InputError(path, f"the gene split misses keys {sorted(required - set(split))}", "re-run the hvg step to rewrite it")
    return split
