"""Is the expected accuracy right? Writes docs/benchmarks-trust.md.

Three checks of ``var["expected_pcc"]`` (causalged/evaluation/trust.py), each against the
estimator that came before it (the similarity-weighted CV PCC of the 5 most similar panel
genes, kept as the ``neighbour_pcc`` feature):

1. The demo, through ``causalged run --demo`` (default method only): the imputed target genes
   against the simulator's truth of the unmeasured genes (simulated truth), and the per-gene
   coverage of the 5-95 % intervals on held-out panel genes.
2. osmFISH and MERFISH: the nested estimate of every panel gene against its cross-validated
   PCC (held-out protocol, normalized truth), the default method, every seed of
   docs/benchmarks.per_gene.csv (written by ``causalged benchmark``; rerun that to refresh).

Usage: python benchmarks/trust.py [--output docs/benchmarks-trust.md] [--data ../shared/data]
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import click
import numpy as np
import pandas as pd

from causalged.research.benchmark import prepare
from causalged.evaluation.trust import expected_accuracy, trust_features
from causalged.io import write_text_atomic
from causalged.methods import DEFAULT_METHOD

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("osmfish_ssp_cortex", "merfish_hypothalamus_rctd")
TARGETS = {"demo_mae": 0.05, "demo_r": 0.7, "panel_r": 0.5, "coverage_share": 0.9}


def agreement(expected: pd.Series, actual: pd.Series) -> dict[str, float]:
    both = pd.concat([expected, actual], axis=1).dropna()
    return {"r": float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1]), "mae": float((both.iloc[:, 0] - both.iloc[:, 1]).abs().mean()),
            "n": len(both)}


def demo_check(workdir: Path) -> dict:
    """`causalged run --demo` with the default method; scores read back from its outputs."""
    cmd = [sys.executable, "-m", "causalged.cli", "run", "--demo", "--outdir", str(workdir), "--eval-methods", DEFAULT_METHOD]
    subprocess.run(cmd, check=True, capture_output=True)
    imputed = ad.read_h5ad(workdir / "demo" / "impute" / "demo.imputed.h5ad")
    trust = pd.read_csv(workdir / "demo" / "evaluate" / "demo.gene_trust.csv")
    sc_data = ad.read_h5ad(workdir / "demo" / "hvg" / "demo.sc.hvg.h5ad")
    panel = trust[(trust.kind == "panel") & (trust.method == DEFAULT_METHOD)].set_index("gene")
    before = trust_features(sc_data, list(imputed.var_names), list(panel.index), panel.cv_pcc)["neighbour_pcc"]
    reached = imputed.var["simulated_truth_pcc"]
    coverage = panel.coverage_90.dropna()
    return {
        "targets_now": agreement(imputed.var["expected_pcc"], reached),
        "targets_before": agreement(before, reached),
        "mean_expected": float(imputed.var["expected_pcc"].mean()), "mean_reached": float(reached.mean()),
        "panel_now": agreement(panel.expected_pcc, panel.cv_pcc),
        "coverage_share": float(coverage.between(0.80, 0.97).mean()), "coverage_range": (float(coverage.min()), float(coverage.max())),
        "trust_counts": imputed.var["trust"].value_counts().to_dict(),
    }


def panel_check(data: Path, per_gene: pd.DataFrame) -> list[dict]:
    """Nested estimate vs CV PCC of panel genes, per dataset and seed."""
    rows = []
    for dataset in DATASETS:
        scores = per_gene[(per_gene.dataset == dataset) & (per_gene.method == DEFAULT_METHOD)]
        for seed, by_seed in scores.groupby("seed"):
            _, sc_data, _, _ = prepare(str(data / dataset), seed=int(seed), n_folds=10)
            cv = by_seed.set_index("gene")["pcc"]
            _, nested = expected_accuracy(sc_data, cv, list(cv.index))
            before = trust_features(sc_data, list(cv.index), list(cv.index), cv)["neighbour_pcc"]
            rows.append({"dataset": dataset, "seed": int(seed), "genes": len(cv), **{f"now_{k}": v for k, v in agreement(nested, cv).items()},
                         **{f"before_{k}": v for k, v in agreement(before, cv).items()}})
    return rows


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def render(demo: dict, panel: list[dict], seconds: float, command: str) -> str:
    table = pd.DataFrame(panel)
    mean = table.groupby("dataset")[["now_r", "now_mae", "before_r", "before_mae"]].mean()
    t, c = demo["targets_now"], demo["coverage_share"]
    lines = [
        "# Trust: is the expected accuracy right?",
        "",
        f"Written by `{command}` on {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} ({seconds / 60:.1f} min). Method: `{DEFAULT_METHOD}` "
        "(the default). **Protocol: held-out genes**, normalized truth. *Now* = the expected PCC of causalged/evaluation/trust.py "
        "(ridge on reference-only gene features, checked by nested CV over panel genes); *before* = the similarity-weighted CV "
        "PCC of the 5 most similar panel genes, the estimator it replaced.",
        "",
        "## Demo: imputed genes against the simulated truth",
        "",
        "`causalged run --demo --eval-methods knn_ridge_blend`. The simulator kept the counts of the genes outside the panel, so the "
        "imputed genes can be scored (simulated truth; real data never allows this).",
        "",
        "| estimator | genes | Pearson r (expected vs reached) | mean abs error | target |",
        "|---|---|---|---|---|",
        f"| now | {t['n']} | {t['r']:.3f} | {t['mae']:.3f} | r > {TARGETS['demo_r']}: {verdict(t['r'] > TARGETS['demo_r'])}; "
        f"error < {TARGETS['demo_mae']}: {verdict(t['mae'] < TARGETS['demo_mae'])} |",
        f"| before | {demo['targets_before']['n']} | {demo['targets_before']['r']:.3f} | {demo['targets_before']['mae']:.3f} | |",
        "",
        f"Mean expected PCC {demo['mean_expected']:.3f}, mean reached {demo['mean_reached']:.3f}. Trust flags of the imputed genes: "
        + ", ".join(f"{k or 'none'} {v}" for k, v in sorted(demo["trust_counts"].items())) + ".",
        "",
        f"Panel genes of the demo (nested estimate vs CV PCC): r {demo['panel_now']['r']:.3f}, mean abs error {demo['panel_now']['mae']:.3f}.",
        "",
        f"Interval coverage (5-95 %, nominal 0.90) per held-out panel gene: {c:.0%} of genes within 0.80-0.97 "
        f"(range {demo['coverage_range'][0]:.3f}-{demo['coverage_range'][1]:.3f}); target 90 %: {verdict(c >= TARGETS['coverage_share'])}. "
        "The intervals are not recalibrated per gene yet.",
        "",
        "## osmFISH and MERFISH: panel genes, nested estimate vs cross-validated PCC",
        "",
        "Per-gene CV PCCs from docs/benchmarks.per_gene.csv (10 folds, each seed); every panel gene's estimate comes from a model "
        "that never saw its score. Mean over seeds:",
        "",
        "| dataset | seeds | genes | r now | error now | r before | error before | target r > 0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, r in mean.iterrows():
        seeds = int((table.dataset == dataset).sum())
        genes = int(table[table.dataset == dataset].genes.iloc[0])
        lines.append(f"| {dataset} | {seeds} | {genes} | {r.now_r:.3f} | {r.now_mae:.3f} | {r.before_r:.3f} | {r.before_mae:.3f} | "
                     f"{verdict(r.now_r > TARGETS['panel_r'])} |")
    lines += ["", "Per seed:", "", "| dataset | seed | r now | error now | r before | error before |", "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.dataset} | {r.seed} | {r.now_r:.3f} | {r.now_mae:.3f} | {r.before_r:.3f} | {r.before_mae:.3f} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--output", type=click.Path(path_type=Path), default=REPO / "docs" / "benchmarks-trust.md", show_default=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=REPO.parent / "shared" / "data", show_default=True)
@click.option("--per-gene", type=click.Path(dir_okay=False, path_type=Path), default=REPO / "docs" / "benchmarks.per_gene.csv", show_default=True)
def main(output: Path, data: Path, per_gene: Path) -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        demo = demo_check(Path(tmp) / "run")
    panel = panel_check(data, pd.read_csv(per_gene))
    text = render(demo, panel, time.perf_counter() - started, "python benchmarks/trust.py")
    click.echo(str(write_text_atomic(text, output)))


if __name__ == "__main__":
    main()
