"""What the report shows about the imputed target genes, the genes the user asked for.

- maps of the imputed targets (requested genes first, then the most and least trusted), as a
  figure and a MultiQC section;
- on simulated data, whose simulator kept the counts of the genes outside the panel
  (``st.obsm["unmeasured_counts"]``, genes in ``st.uns["causalged_simulation"]["unmeasured_genes"]``),
  the PCC each imputed gene reaches against that truth, beside its expected PCC. That check
  is labelled *simulated truth*: real data has no such answer.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from causalged import report
from causalged.evaluation import figures
from causalged.evaluation.metrics import pcc
from causalged.arrays import as_dense


def simulated_truth(st_data: ad.AnnData, genes: list[str]) -> pd.DataFrame | None:
    """Spots x genes log-normalized truth of unmeasured genes, or None without a simulator's record.

    The counts get each spot's own normalization factor, read off the panel (normalized
    values over raw counts), so the truth is on the scale the imputation is on.
    """
    record = st_data.uns.get("causalged_simulation", {})
    if "unmeasured_counts" not in st_data.obsm or "unmeasured_genes" not in record or "counts" not in st_data.layers:
        return None
    names = [str(g) for g in record["unmeasured_genes"]]
    known = [g for g in genes if g in names]
    if not known:
        return None
    counts = _row_sums(st_data.layers["counts"])
    values = st_data.X
    factor = _row_sums(values.expm1() if sp.issparse(values) else np.expm1(values)) / np.where(counts > 0, counts, 1.0)
    position = {g: i for i, g in enumerate(names)}
    columns = [position[g] for g in known]
    truth = np.log1p(as_dense(st_data.obsm["unmeasured_counts"][:, columns]) * factor[:, None])  # dense only in the known columns
    return pd.DataFrame(truth, index=st_data.obs_names, columns=known)


def _row_sums(matrix) -> np.ndarray:
    """Row totals of a dense or sparse matrix, without densifying it (atlas-size ST panels)."""
    return np.asarray(matrix.sum(axis=1), dtype=float).ravel()


def truth_scores(imputed: ad.AnnData, truth: pd.DataFrame) -> pd.DataFrame:
    """Per imputed gene with a simulated truth: PCC reached and the expected PCC it was given."""
    genes = list(truth.columns)
    reached = pcc(as_dense(imputed[:, genes].X), truth.to_numpy())
    expected = imputed.var["expected_pcc"].reindex(genes) if "expected_pcc" in imputed.var else pd.Series(np.nan, index=genes)
    return pd.DataFrame({"gene": genes, "simulated_truth_pcc": reached, "expected_pcc": expected.to_numpy(dtype=float)})


def truth_summary(scores: pd.DataFrame) -> dict[str, float]:
    """How well the expected accuracy predicted the reached one: mean |difference| and Pearson r."""
    both = scores.dropna(subset=["simulated_truth_pcc", "expected_pcc"])
    vary = len(both) > 2 and both.simulated_truth_pcc.std() > 0 and both.expected_pcc.std() > 0
    return {"n_genes": len(scores), "mean_pcc": float(scores.simulated_truth_pcc.mean()),
            "mean_abs_error": float((both.simulated_truth_pcc - both.expected_pcc).abs().mean()) if len(both) else float("nan"),
            "pearson_r": float(np.corrcoef(both.simulated_truth_pcc, both.expected_pcc)[0, 1]) if vary else float("nan")}


def requested_genes(sc_data: ad.AnnData) -> list[str]:
    """The genes the samplesheet's gene list named (the hvg step's ``var["causalged_requested"]``)."""
    if "causalged_requested" not in sc_data.var:
        return []
    return list(sc_data.var_names[sc_data.var["causalged_requested"].to_numpy(dtype=bool)])


def block_truth_scores(block: ad.AnnData, st_data: ad.AnnData) -> pd.DataFrame | None:
    """:func:`truth_scores` of one block of imputed genes (None without a simulator's record):
    the imputation scores each block as it writes it, never holding all genes at once."""
    truth = simulated_truth(st_data, list(block.var_names))
    return truth_scores(block, truth) if truth is not None else None


def write_target_report(sample: str, imputed: ad.AnnData, maps: ad.AnnData, scores: pd.DataFrame | None, sc_data: ad.AnnData, *,
                        outdir: Path) -> dict[str, Path]:
    """The target maps section and, on simulated data, the simulated-truth table; records the scores in ``imputed``.

    ``maps`` holds the genes to draw (:func:`figures.target_map_genes`), ``scores`` the
    :func:`block_truth_scores` of every block. Adds ``var["simulated_truth_pcc"]`` and
    ``uns["causalged"]["simulated_truth"]`` (the summary) to ``imputed`` when the truth is
    known, before the caller writes them.
    """
    out: dict[str, Path] = {}
    if imputed.n_vars == 0:
        return out
    requested = requested_genes(sc_data)
    reached = scores.set_index("gene")["simulated_truth_pcc"] if scores is not None else None
    out["target_maps"], out["target_maps_mqc"] = report.write_mqc_figure(
        figures.target_maps(maps, requested=requested, title=sample, truth=reached),
        Path(outdir) / "figures" / f"{sample}.target_maps.png", section_id=f"causalged_fig4_target_maps_{report.slug(sample)}",
        section_name=f"Imputed genes: {sample}",
        description="Imputed expression of genes the panel did not measure: the requested genes first, then the most and least "
        "trusted (expected PCC from the held-out panel genes)" + ("; on simulated data also the PCC against the simulator's truth." if scores is not None else "."),
    )
    if scores is not None:
        imputed.var["simulated_truth_pcc"] = reached.reindex(imputed.var_names).to_numpy(dtype=float)
        summary = truth_summary(scores)
        imputed.uns.setdefault("causalged", {})["simulated_truth"] = summary
        table = scores.rename(columns={"gene": "Sample"})
        table["Sample"] = [f"{sample} | {g}" for g in table["Sample"]]
        out["truth_mqc"] = report.write_mqc_table(
            table, Path(outdir) / f"{sample}.simulated_truth_mqc.tsv", section_id="causalged_simulated_truth",
            section_name="Imputed genes against the simulated truth",
            description=f"Simulated truth: the demo simulator kept the counts of the genes outside the panel, so the imputed genes can be "
            f"scored, which real data never allows. Mean PCC {summary['mean_pcc']:.3f} over {summary['n_genes']} genes; expected vs reached: "
            f"mean |difference| {summary['mean_abs_error']:.3f}, Pearson r {summary['pearson_r']:.3f}.",
        )
    return out
