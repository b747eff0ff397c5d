"""The preprocessing steps as file-in, file-out functions: what the CLI and `causalged run` call.

Each step reads validated inputs, writes its outputs atomically under ``outdir`` with the
sample id as prefix, and returns the output paths. Output names are the contract with the
Nextflow modules (``modules/local/*/main.nf``).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from causalged import preprocess, report
from causalged.io import check_writable, ensure_not_input, read_gene_list, read_h5ad, write_h5ad_atomic, write_json_atomic
from causalged.stream import read_reference

log = logging.getLogger(__name__)


def step_outputs(sample: str, step: str, outdir: str | Path) -> dict[str, Path]:
    """The files a preprocessing step writes (the same names the Nextflow modules declare)."""
    outdir = Path(outdir)
    names = {
        "qc": {"sc": f"{sample}.sc.qc.h5ad", "st": f"{sample}.st.qc.h5ad", "json": f"{sample}.qc.json", "mqc": f"{sample}.qc_mqc.tsv"},
        "normalize": {"sc": f"{sample}.sc.norm.h5ad", "st": f"{sample}.st.norm.h5ad"},
        "hvg": {"sc": f"{sample}.sc.hvg.h5ad", "st": f"{sample}.st.hvg.h5ad", "split": f"{sample}.split.json", "mqc": f"{sample}.hvg_mqc.tsv"},
    }[step]
    return {key: outdir / name for key, name in names.items()}


def run_qc(sample: str, sc_path: Path, st_path: Path, outdir: Path, **params) -> dict[str, Path]:
    out = step_outputs(sample, "qc", outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc_path, st_path])
    st_data = read_h5ad(st_path, role="st")
    with read_reference(sc_path) as sc_data:
        sc_qc, st_qc, summary = preprocess.qc(sc_data, st_data, sc_path=sc_path, st_path=st_path, **params)
        write_h5ad_atomic(sc_qc, out["sc"])
    write_h5ad_atomic(st_qc, out["st"])
    write_json_atomic({"sample": sample, **summary}, out["json"])
    report.write_mqc_table(
        preprocess.qc_table(sample, summary), out["mqc"], section_id="causalged_qc", section_name="QC filtering",
        description="Cells (scRNA-seq) and spots (ST) before and after QC, with the detected-gene threshold actually used.",
    )
    log.info("%s QC: %d/%d cells, %d/%d spots kept", sample, summary["sc"]["n_obs_after"], summary["sc"]["n_obs_before"], summary["st"]["n_obs_after"], summary["st"]["n_obs_before"])
    return out


def run_normalize(sample: str, sc_path: Path, st_path: Path, outdir: Path, *, already_normalized: bool = False) -> dict[str, Path]:
    out = step_outputs(sample, "normalize", outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc_path, st_path])
    for role, path in (("sc", sc_path), ("st", st_path)):
        with read_reference(path) if role == "sc" else contextlib.nullcontext(read_h5ad(path, role=role)) as data:
            # name the user's file, not the QC step's copy of it, in an error about its values
            source = data.uns.get("causalged", {}).get("qc", {}).get("inputs", {}).get(role) or path
            write_h5ad_atomic(preprocess.normalize(data, already_normalized=already_normalized, path=source), out[role])
    return out


def run_hvg(sample: str, sc_path: Path, st_path: Path, outdir: Path, *, genes: Path | None = None, top_fraction: float = 0.25, n_folds: int = 10, seed: int = 0) -> dict[str, Path]:
    out = step_outputs(sample, "hvg", outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc_path, st_path, genes])
    st_data = read_h5ad(st_path, role="st")
    requested = read_gene_list(genes) if genes else None
    with read_reference(sc_path) as sc_data:
        sc_hvg, st_hvg, summary = preprocess.select_hvg(sc_data, st_data, top_fraction=top_fraction, requested_genes=requested)
        kept = preprocess.annotations(sc_hvg)
        split = preprocess.make_gene_splits(
            list(st_hvg.var_names), target_genes=list(kept.var_names[kept.var["causalged_target"].to_numpy()]), seed=seed,
            n_folds=n_folds, path=st_path,
        )
        write_h5ad_atomic(sc_hvg, out["sc"])
    write_h5ad_atomic(st_hvg, out["st"])
    write_json_atomic({"sample": sample, **split}, out["split"])
    report.write_mqc_table(
        preprocess.hvg_table(sample, summary), out["mqc"], section_id="causalged_hvg", section_name="Gene selection",
        description="Highly variable reference genes (scanpy, seurat flavour on log data), genes shared with the ST panel (trainable) and genes to impute.",
    )
    return out
