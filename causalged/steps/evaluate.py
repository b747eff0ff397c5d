"""Evaluation step: score the cross-validated folds, estimate each gene's trust, draw the figures.

Outputs of :func:`run` (prefix ``<sample>``, under ``outdir``):

- ``.metrics.csv``: one row per gene x method x protocol x truth (see ``scoring``).
- ``.metrics_summary.csv``: mean/SD over genes and the AS, with a protocol column.
- ``.heldout_predictions.h5ad``: spots x shared genes; ``X`` = normalized truth,
  ``layers["counts"]`` = raw truth, one layer per method, ``<method>_q05/_q95`` intervals,
  ``uns["default_method"]`` names the default's layer.
- ``.gene_trust.csv``: expected accuracy per panel and target gene, interval coverage.
- ``.metrics_mqc.tsv``, ``.trust_mqc.tsv``, ``.general_mqc.tsv`` (general statistics row),
  ``.default_choices_mqc.tsv`` (what the default's inner CV chose in each fold) and
  ``figures/<sample>.<name>.png`` with its MultiQC section ``figures/<sample>.<name>_mqc.html``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import pandas as pd

from causalged import report
from causalged.errors import InputError
from causalged.evaluation import figures
from causalged.evaluation.crossval import PROTOCOL_LABELS, PROTOCOLS, combine_folds, run_fold
from causalged.evaluation.scoring import score_predictions, summarize
from causalged.evaluation.trust import trust_table
from causalged.io import ensure_not_input, write_csv_atomic, write_h5ad_atomic

log = logging.getLogger(__name__)


def read_fold(path: Path) -> ad.AnnData:
    """One fold file from `crossval`; a truncated or foreign file is an InputError naming it."""
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py/anndata raise many types for a damaged file
        raise InputError(path, f"could not be read as a fold predictions file ({type(err).__name__}: {err})",
                         "re-run `causalged crossval` for that fold (the file is truncated or not an .h5ad)") from err


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/evaluate declares); figures beside them under figures/."""
    outdir = Path(outdir)
    return {
        "metrics": outdir / f"{sample}.metrics.csv",
        "summary": outdir / f"{sample}.metrics_summary.csv",
        "predictions": outdir / f"{sample}.heldout_predictions.h5ad",
        "trust": outdir / f"{sample}.gene_trust.csv",
        "metrics_mqc": outdir / f"{sample}.metrics_mqc.tsv",
        "trust_mqc": outdir / f"{sample}.trust_mqc.tsv",
        "general_mqc": outdir / f"{sample}.general_mqc.tsv",
        "choices_mqc": outdir / f"{sample}.default_choices_mqc.tsv",
    }


def run(*, sample: str, sc: Path, st: Path, split: Path, predictions: Sequence[Path] = (), outdir: Path = Path("."), seed: int = 0,
        preset: str = "cpu", device: str = "auto", epochs: int | None = None, n_samples: int = 8, sampler: str = "ddim",
        sampling_steps: int = 50, inference_mode: str | None = None, methods: str | None = None, metric_set: str = "canonical",
        protocol: str = "heldout", no_figures: bool = False) -> dict[str, Path]:
    """Gather fold files (or run every fold), score, and write every evaluation output."""
    from causalged.device import resolve_device
    from causalged.evaluation.crossval import default_choices, load_inputs
    from causalged.methods import parse_methods
    from causalged.steps.crossval import model_overrides

    resolve_device(device)
    sc_path, st_path, split_path = sc, st, split
    overrides = model_overrides(epochs, sampler, sampling_steps, inference_mode)
    if protocol not in PROTOCOLS:
        raise InputError(None, f"unknown protocol {protocol!r}", f"choose one of {', '.join(PROTOCOLS)}")
    outdir = Path(outdir)
    sc_data, st_data, split = load_inputs(sc_path, st_path, split_path)
    if predictions:
        folds = [read_fold(p) for p in predictions]
        bad = [str(p) for p, a in zip(predictions, folds) if "causalged_crossval" not in a.uns]
        if bad:
            raise InputError(bad[0], "not a fold predictions file (no uns['causalged_crossval'])", "pass the <sample>.fold<K>.predictions.h5ad files written by `causalged crossval`")
        for path, fold in zip(predictions, folds):  # each file must be the fold of this split it says it is
            k = int(fold.uns["causalged_crossval"]["fold"])
            if not 0 <= k < len(split["folds"]) or sorted(map(str, fold.var_names)) != sorted(split["folds"][k]):
                raise InputError(path, f"its held-out genes are not fold {k} of {split_path} (a fold file of another split or run)",
                                 "pass the fold files that `causalged crossval` wrote with this split, or run crossval again")
    else:
        chosen = parse_methods(methods)
        folds = [run_fold(sc_data, st_data, split, k, methods=chosen, seed=seed, n_samples=n_samples, preset=preset, device=device, overrides=overrides)
                 for k in range(len(split["folds"]))]
    done = sorted(int(a.uns["causalged_crossval"]["fold"]) for a in folds)
    if done != list(range(len(split["folds"]))):
        log.warning("%s: only folds %s of %d evaluated; scores cover those genes only", sample, done, len(split["folds"]))
    combined = combine_folds(folds)
    combined.uns["sample"] = sample
    combined.uns["protocol_note"] = PROTOCOL_LABELS["heldout"] + (
        "; paper-protocol scores are in metrics.csv rows with protocol == 'paper-inpainting'" if protocol == "paper-inpainting" else ""
    )
    metrics = score_predictions(combined, metric_set=metric_set, protocol=protocol, seed=seed)
    summary = summarize(metrics)
    default = combined.uns["default_method"] if combined.uns["default_method"] in combined.uns["causalged_crossval"]["methods"] else combined.uns["causalged_crossval"]["methods"][0]
    # Trust for every evaluated method, so whichever one the production branch uses finds its rows.
    trusts = {m: trust_table(sc_data, combined, metrics, method=m, target_genes=list(split.get("target_genes", [])))
              for m in combined.uns["causalged_crossval"]["methods"]}
    trust = pd.concat([table for table, _ in trusts.values()], ignore_index=True)
    trust_summaries = [summary for _, summary in trusts.values()]
    combined.uns["trust_summary"] = trusts[default][1]

    out = outputs(sample, outdir)
    choices = default_choices(sample, combined)
    if choices is None:
        del out["choices_mqc"]
    for path in out.values():
        ensure_not_input(path, [sc_path, st_path, split_path, *predictions])
    write_csv_atomic(metrics, out["metrics"], index=False, float_format="%.6g")
    write_csv_atomic(summary, out["summary"], index=False, float_format="%.6g")
    write_h5ad_atomic(combined, out["predictions"])
    write_csv_atomic(trust, out["trust"], index=False, float_format="%.6g")
    report.write_mqc_table(
        mqc_summary(sample, summary), out["metrics_mqc"], section_id="causalged_metrics", section_name="Imputation accuracy (cross-validation)",
        description=f"Mean over genes per method. Protocol column: heldout = test genes absent from the ST input "
        f"({len(split['folds'])}-fold over shared genes); truth normalized = primary, raw_counts = SpatialBenchmarking convention "
        f"(compare with the spot_depth floor); paper-inpainting = the public code's masked protocol, NOT a held-out score. "
        f"AS = mean rank over the 4 metrics within one protocol/truth (higher is better). Default method: {default}.",
    )
    report.write_mqc_table(
        mqc_trust(sample, trust_summaries), out["trust_mqc"], section_id="causalged_trust", section_name="Per-gene trust and calibration",
        description="Does the expected accuracy track the cross-validated PCC of panel genes (each estimated from the others), and how often "
        "does the true value fall in the 5-95% interval of the samples (nominal 0.90)? Measured on held-out panel genes.",
    )
    report.write_mqc_table(
        general_stats(sample, sc_data, st_data, split, summary, default), out["general_mqc"], section_id="causalged_general",
        section_name="CausalGeD", description="One row per sample.", plot_type="generalstats", headers=GENERAL_HEADERS,
    )
    if choices is not None:
        report.write_mqc_table(
            choices, out["choices_mqc"], section_id="causalged_default_choices", section_name="What the default chose, per fold",
            description="knn_ridge_blend picks its parts on the training genes of each fold (inner CV; the fold's test genes are never read): "
            "k and PCs of the kNN view, the ridge kernel, alpha (kNN share; 0 = ridge alone, 1 = kNN alone), the spatial weight beta "
            "(0 = no spatial view) and neighbourhood; inner PCC = mean out-of-fold PCC of training genes for the best kNN alone, ridge alone, "
            "two-view blend, and the choice.",
        )
    if not no_figures:
        expected = trust[trust.method == default].set_index("gene")["expected_pcc"]
        out.update(write_figures(sample, combined, metrics, outdir=outdir, method=default, seed=seed, expected=expected))
    return out


GENERAL_HEADERS = {
    "spots": {"title": "Spots", "description": "ST spots after QC", "format": "{:,.0f}"},
    "cells": {"title": "Cells", "description": "scRNA-seq cells after QC", "format": "{:,.0f}"},
    "genes_imputed": {"title": "Genes imputed", "description": "genes outside the ST panel that are imputed", "format": "{:,.0f}"},
    "default_method": {"title": "Method", "description": "default method of the evaluation"},
    "heldout_pcc": {"title": "Held-out PCC", "description": "the default method's mean PCC over held-out panel genes (normalized truth)",
                    "min": 0, "max": 1, "scale": "RdYlGn"},
}


def general_stats(sample: str, sc_data: ad.AnnData, st_data: ad.AnnData, split: dict, summary: pd.DataFrame, method: str) -> pd.DataFrame:
    """The sample's row of MultiQC's general statistics: sizes, the default method and its held-out PCC."""
    row = summary[(summary.protocol == "heldout") & (summary.truth == "normalized") & (summary.method == method)]
    return pd.DataFrame([{"Sample": sample, "spots": st_data.n_obs, "cells": sc_data.n_obs, "genes_imputed": len(split.get("target_genes", [])),
                          "default_method": method, "heldout_pcc": float(row.pcc.iloc[0]) if len(row) else float("nan")}])


def mqc_summary(sample: str, summary: pd.DataFrame) -> pd.DataFrame:
    table = summary.copy()
    table.insert(0, "Sample", [f"{sample} | {r.protocol} | {r.truth} | {r.method}" for r in table.itertuples()])
    cols = ["Sample", "protocol", "truth", "metric_set", "method", "pcc", "ssim", "rmse", "js", "AS", "n_genes"]
    return table[cols].round(4)


def mqc_trust(sample: str, trust_summaries: Sequence[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"Sample": f"{sample} | {s['method']}", **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}}
                         for s in trust_summaries])


#: figure key -> (rank, file stem, section title, description); sections get the sample's name.
#: MultiQC orders these sections by id, so ids carry the rank (imputed-gene maps, from impute, are 4th).
FIGURES = {
    "fig_metrics": (1, "metrics_boxplot", "Per-gene scores by method",
                    "Each box: the genes of one method, held-out protocol, normalized truth."),
    "fig_spatial": (2, "spatial_maps", "Spatial maps: held-out panel genes",
                    "The default method's best, median and worst held-out gene: measured (top) and predicted without it (bottom), "
                    "with the PCC reached and the expected PCC the trust estimate gave it."),
    "fig_umap": (5, "umap", "UMAP: real vs predicted spots", "Real and predicted spots (held-out genes) embedded together; overlap means "
                 "the predictions keep the spots' structure."),
    "fig_gene_distance": (6, "gene_distance", "Gene-gene distance: true vs predicted",
                          "1 - Pearson r between genes over spots, clustered on the truth."),
    "fig_training": (3, "training_curves", "Training curves (cross-validation)",
                     "Every diffusion model fitted in cross-validation: training loss and validation PCC per epoch, one line per fold."),
}


def write_figures(sample: str, combined: ad.AnnData, metrics: pd.DataFrame, *, outdir: Path, method: str, seed: int = 0,
                  expected: pd.Series | None = None) -> dict[str, Path]:
    """The evaluation figures: ``figures/<sample>.<name>.png`` and the MultiQC section beside it."""
    figdir = Path(outdir) / "figures"
    curves = fold_curves(combined)
    makers = {
        "fig_metrics": lambda: figures.metric_boxplots(metrics, title=sample),
        "fig_spatial": lambda: figures.spatial_maps(combined, metrics, method=method, title=sample, expected=expected),
        "fig_umap": lambda: figures.umap_spots(combined, method=method, title=sample, seed=seed),
        "fig_gene_distance": lambda: figures.gene_distance_heatmaps(combined, method=method, title=sample),
        **({"fig_training": lambda: figures.training_curves(curves, title=sample)} if curves else {}),
    }
    out = {}
    for key, make in makers.items():
        rank, name, section, description = FIGURES[key]
        try:
            out[key], _ = report.write_mqc_figure(make(), figdir / f"{sample}.{name}.png", section_id=f"causalged_fig{rank}_{name}_{report.slug(sample)}",
                                                  section_name=f"{section}: {sample}", description=description)
        except Exception as err:  # a figure must never sink the metrics already written
            log.warning("%s: figure %s not drawn (%s: %s)", sample, name, type(err).__name__, err)
    return out


def fold_curves(combined: ad.AnnData) -> dict[str, dict[str, dict]]:
    """method -> fold -> training curve, for every model fitted in the folds (shared fits once)."""
    curves: dict[str, dict[str, dict]] = {}
    for fold, info in combined.uns["causalged_crossval"].get("method_info_by_fold", {}).items():
        for method, details in info.items():
            if isinstance(details, dict) and details.get("curve") and "fit_shared_with" not in details:
                curves.setdefault(method, {})[fold] = details["curve"]
    return curves
