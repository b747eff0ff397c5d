"""Preprocessing for notebooks: scanpy-style functions over AnnData, the same code the qc, normalize and hvg steps run.

Each returns new AnnData objects (the inputs are left as they were) and records what it did in
``.uns["causalged"][<step>]``; the keys are documented in docs/output.md.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad

from causalged import preprocess


def qc(sc: ad.AnnData, st: ad.AnnData, *, min_genes_cell: int = 500, min_genes_spot: int = 1, min_cells_gene: int = 1,
       scale_min_genes: bool = True, case_insensitive: bool = False) -> tuple[ad.AnnData, ad.AnnData]:
    """Drop cells and spots with too few detected genes and genes detected nowhere; ``(sc, st)`` filtered.

    ``scale_min_genes`` scales ``min_genes_cell`` to the reference's gene count (500 assumes a
    whole transcriptome); ``case_insensitive`` renames ST genes to the reference's capitalisation.
    """
    sc_qc, st_qc, _ = preprocess.qc(sc.copy(), st.copy(), min_genes_cell=min_genes_cell, min_genes_spot=min_genes_spot,
                                    min_cells_gene=min_cells_gene, scale_min_genes=scale_min_genes, case_insensitive=case_insensitive)
    return sc_qc, st_qc


def normalize(adata: ad.AnnData, *, already_normalized: bool = False) -> ad.AnnData:
    """log1p of counts scaled to the median total per observation; raw counts kept in ``layers["counts"]``.

    Non-integer values are refused unless ``already_normalized`` (then the values are used as they are).
    """
    return preprocess.normalize(adata.copy(), already_normalized=already_normalized)


def select_genes(sc: ad.AnnData, st: ad.AnnData, *, top_fraction: float = 0.25, genes: Sequence[str] | None = None) -> tuple[ad.AnnData, ad.AnnData]:
    """Keep the most variable reference genes, the ST panel and ``genes``; mark them in ``sc.var``.

    ``sc.var["causalged_shared"]``: measured by the panel too (trainable); ``["causalged_target"]``:
    not measured (imputed); ``["causalged_requested"]``: named in ``genes``. Inputs are log-normalized.
    """
    sc_hvg, st_hvg, _ = preprocess.select_hvg(sc.copy(), st.copy(), top_fraction=top_fraction, requested_genes=list(genes) if genes else None)
    return sc_hvg, st_hvg


__all__ = ["normalize", "qc", "select_genes"]
