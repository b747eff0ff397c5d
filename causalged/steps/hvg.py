"""Gene selection step: highly variable reference genes, the ST panel and requested genes; the seeded gene split.

The split (train / val / test and K folds over the genes both modalities measure) is what every
later step trains and cross-validates on, so it is written once here and read everywhere else.
"""

from __future__ import annotations

from pathlib import Path

from causalged import preprocess, report
from causalged.io import check_writable, ensure_not_input, read_gene_list, read_h5ad, write_h5ad_atomic, write_json_atomic
from causalged.stream import read_reference


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/hvg declares)."""
    outdir = Path(outdir)
    return {"sc": outdir / f"{sample}.sc.hvg.h5ad", "st": outdir / f"{sample}.st.hvg.h5ad", "split": outdir / f"{sample}.split.json",
            "mqc": outdir / f"{sample}.hvg_mqc.tsv"}


def run(*, sample: str, sc: Path, st: Path, genes: Path | None = None, outdir: Path = Path("."), top_fraction: float = 0.25,
        n_folds: int = 10, seed: int = 0) -> dict[str, Path]:
    out = outputs(sample, outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc, st, genes])
    st_data = read_h5ad(st, role="st")
    requested = read_gene_list(genes) if genes else None
    with read_reference(sc) as sc_data:
        sc_hvg, st_hvg, summary = preprocess.select_hvg(sc_data, st_data, top_fraction=top_fraction, requested_genes=requested)
        kept = preprocess.annotations(sc_hvg)
        split = preprocess.make_gene_splits(
            list(st_hvg.var_names), target_genes=list(kept.var_names[kept.var["causalged_target"].to_numpy()]), seed=seed,
            n_folds=n_folds, path=st,
        )
        write_h5ad_atomic(sc_hvg, out["sc"])
    write_h5ad_atomic(st_hvg, out["st"])
    write_json_atomic({"sample": sample, **split}, out["split"])
    report.write_mqc_table(
        preprocess.hvg_table(sample, summary), out["mqc"], section_id="causalged_hvg", section_name="Gene selection",
        description="Highly variable reference genes (scanpy, seurat flavour on log data), genes shared with the ST panel (trainable) and genes to impute.",
    )
    return out
