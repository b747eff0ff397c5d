"""Import step: the sample's inputs, as people have them, turned into the pipeline's internal pair.

Reads the ST input (an .h5ad, a SpatialData ``.zarr`` or an instrument folder: Visium, Visium HD,
Xenium, MERSCOPE, CosMx) and the reference (.h5ad, Cell Ranger ``.h5`` or matrix folder, ``.loom``)
with :mod:`causalged.formats`, names the reference's genes as the panel does, and writes both as
.h5ad with raw counts in ``X`` (the ST positions in ``obsm["spatial"]``). What it decided goes to
``uns["causalged"]["import"]`` of both files and to ``<sample>.import.json``: the layout and
reader with its version, each input file's checksum, the bin size or segmentation, where the
reference's counts were found and how gene ids were mapped. Every later step is unchanged.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/import declares)."""
    outdir = Path(outdir)
    return {"sc": outdir / f"{sample}.sc.h5ad", "st": outdir / f"{sample}.st.h5ad", "json": outdir / f"{sample}.import.json",
            "mqc": outdir / f"{sample}.import_mqc.tsv"}


def run(*, sample: str, sc: Path, st: Path, outdir: Path = Path("."), platform: str | None = None, bin_size: int = 8,
        gene_symbols: str | None = None, already_normalized: bool = False) -> dict[str, Path]:
    from causalged import formats, report
    from causalged.io import atomic_write, check_writable, ensure_not_input, record_step, write_h5ad_atomic, write_json_atomic

    out = outputs(sample, outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc, st])
    st_data, st_info = formats.read_spatial(st, bin_size=bin_size, platform=platform)
    if not already_normalized and not formats.is_count_matrix(st_data.X):
        from causalged.errors import InputError

        raise InputError(st, "the spatial counts are not raw counts (non-integer values in the count table)",
                         "provide the instrument's raw counts, or pass --already-normalized if these are log-normalized values")
    large = formats.reference_layout(sc) == "h5ad" and _above_stream_limit(sc)
    if large:  # an atlas already in the internal form: copied byte for byte, its values checked as qc and normalize stream them
        sc_info = {"layout": "h5ad", "reader": "copied as is (above the stream limit)", "counts_from": "X", "files": formats.file_records(sc)}
        ids = {"matched_by": "var_names (not mapped: the reference is above the stream limit)"}
        atomic_write(out["sc"], lambda tmp: shutil.copyfile(sc, tmp))
    else:
        sc_data, sc_info = formats.read_reference(sc, gene_symbols=gene_symbols, already_normalized=already_normalized)
        ids = formats.match_gene_ids(sc_data, st_data, gene_symbols=gene_symbols, sc_path=sc, st_path=st)
        formats.check_sizes(sc_data, st_data, sc_path=sc, st_path=st)
    record = {"sample": sample, "st": {**st_info, "input": str(st), "platform": platform, "n_obs": st_data.n_obs, "n_genes": st_data.n_vars},
              "sc": {**sc_info, "input": str(sc)}, "gene_ids": ids}
    record_step(st_data, "import", record)
    write_h5ad_atomic(st_data, out["st"])
    if not large:
        record["sc"].update(n_obs=sc_data.n_obs, n_genes=sc_data.n_vars)
        record_step(sc_data, "import", record)
        write_h5ad_atomic(sc_data, out["sc"])
    write_json_atomic(record, out["json"])
    report.write_mqc_table(
        pd.DataFrame([{"Sample": f"{sample} ({role})", "layout": record[role]["layout"], "reader": record[role]["reader"],
                       "observations": record[role].get("n_obs"), "genes": record[role].get("n_genes")} for role in ("st", "sc")]),
        out["mqc"], section_id="causalged_import", section_name="Inputs",
        description=f"How each input was read. Reference genes matched by {ids['matched_by']}"
                    + (f"; {len(ids.get('panel_genes_not_in_reference', []))} panel genes are not in the reference." if "shared_genes" in ids else "."),
    )
    log.info("%s import: ST %s (%d x %d), reference %s", sample, st_info["layout"], st_data.n_obs, st_data.n_vars, sc_info["layout"])
    return out


def _above_stream_limit(path: Path) -> bool:
    from causalged.stream import stored_entries, stream_limit

    try:
        return stored_entries(path) > stream_limit()
    except Exception:  # not readable as h5ad: the reader says why
        return False
