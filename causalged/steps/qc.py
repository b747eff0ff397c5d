"""QC step: drop low-quality cells and spots, and genes detected nowhere (scanpy filters).

File in, file out: raw-count .h5ad pair -> filtered pair, a JSON summary and a MultiQC table.
The detected-gene threshold for cells is scaled to the reference's gene count unless told not to,
because 500 genes per cell assumes a whole-transcriptome reference.
"""

from __future__ import annotations

import logging
from pathlib import Path

from causalged import preprocess, report
from causalged.io import check_writable, ensure_not_input, read_h5ad, write_h5ad_atomic, write_json_atomic
from causalged.stream import read_reference

log = logging.getLogger(__name__)


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/qc declares)."""
    outdir = Path(outdir)
    return {"sc": outdir / f"{sample}.sc.qc.h5ad", "st": outdir / f"{sample}.st.qc.h5ad", "json": outdir / f"{sample}.qc.json",
            "mqc": outdir / f"{sample}.qc_mqc.tsv"}


def run(*, sample: str, sc: Path, st: Path, outdir: Path = Path("."), min_genes_cell: int = 500, min_genes_spot: int = 1,
        min_cells_gene: int = 1, scale_min_genes: bool = True, case_insensitive: bool = False) -> dict[str, Path]:
    out = outputs(sample, outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc, st])
    st_data = read_h5ad(st, role="st")
    with read_reference(sc) as sc_data:
        # name the user's files, not the import step's copies, in messages and records
        sources = st_data.uns.get("causalged", {}).get("import", {})
        sc_source, st_source = (sources.get(role, {}).get("input") or path for role, path in (("sc", sc), ("st", st)))
        sc_qc, st_qc, summary = preprocess.qc(sc_data, st_data, sc_path=sc_source, st_path=st_source, min_genes_cell=min_genes_cell,
                                              min_genes_spot=min_genes_spot, min_cells_gene=min_cells_gene,
                                              scale_min_genes=scale_min_genes, case_insensitive=case_insensitive)
        write_h5ad_atomic(sc_qc, out["sc"])
    write_h5ad_atomic(st_qc, out["st"])
    write_json_atomic({"sample": sample, **summary}, out["json"])
    report.write_mqc_table(
        preprocess.qc_table(sample, summary), out["mqc"], section_id="causalged_qc", section_name="QC filtering",
        description="Cells (scRNA-seq) and spots (ST) before and after QC, with the detected-gene threshold actually used.",
    )
    log.info("%s QC: %d/%d cells, %d/%d spots kept", sample, summary["sc"]["n_obs_after"], summary["sc"]["n_obs_before"],
             summary["st"]["n_obs_after"], summary["st"]["n_obs_before"])
    return out
