"""Validation of `causalged causality` against the simulator's known network; writes docs/causality.md.

For several simulator seeds and both network modes (``cell``: regulation within cells, the
demo data; ``spatial``: regulators act through neighbouring spots, ``simulate(grn="spatial")``),
every method and two undirected baselines (absolute correlation, partial correlation) are
scored on the directed edges among the ST panel genes: AUPRC of the ranking, precision and
recall of the called edges, precision at K = the number of true edges, and how often a true
edge outscores its reverse. Then the real osmFISH and MERFISH panels (no truth there) get their
top pairs listed, and the Granger test is timed at 100 genes x 3,000 spots.

    nice -n 10 .venv/bin/python benchmarks/causality.py [--seeds 0,1,2] [--output docs/causality.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from causalged import causality as c  # noqa: E402
from causalged.io import read_h5ad, write_text_atomic  # noqa: E402
from causalged.preprocess import normalize  # noqa: E402
from causalged.simulate import simulate  # noqa: E402

DATA = REPO.parent / "shared" / "data"
REAL = {"osmFISH (SSp cortex)": "osmfish_ssp_cortex", "MERFISH (hypothalamus)": "merfish_hypothalamus_rctd"}
#: The reading of the results of the last run (seeds 0,1,2); check it against the tables when they change.
READING = (
    'All AUPRCs are at most about five times the base rate (0.007): on these data no method recovers the '
    'network well. Two of them do beat the correlation baseline by more than the spread over seeds, each '
    'only in the mode built for it: `granger` with cell-type fractions as covariates in the `spatial` mod'
    'e (AUPRC 0.027 vs 0.011), and the `knn_cells` linearization in the `cell` mode (0.035 vs 0.009), whe'
    're the reference cells carry the within-cell regulation. Neither finds the direction: a true edge ou'
    'tscores its reverse about half the time (0.47-0.69), so what they recover is which genes are linked,'
    ' not which drives which. Plain `granger` (no covariates, as the pipeline runs on real data) is a mis'
    's in both modes: it calls thousands of pairs at q < 0.05 with precision near the base rate, because '
    "spatial domains make every pair of domain-patterned genes 'predict' each other through the lag; and "
    'the reverse of a true edge is significant too, because the neighbourhood graph is symmetric (the nei'
    "ghbours of a spot's neighbours include the spot), so the direction is only the comparison of the two"
    ' F statistics. The linearizations respond only through co-expression (knn_cells) or gene-gene simila'
    'rity (linear_ridge) in the reference, which carry no direction; in the `spatial` mode the reference '
    'holds almost none of the paracrine signal, and both are misses there. Where a line reads "a miss", i'
    't is one. `causalged causality` writes this warning into its JSON and its MultiQC section.'
)
LABELS = {
    "granger": "granger (spatial F-test)",
    "granger_cov": "granger + cell-type fractions as covariates",
    "linear_ridge": "linearization: default method's ridge view",
    "knn_cells": "linearization: kNN-over-cells generator",
    "correlation": "baseline: abs. correlation",
    "partial_correlation": "baseline: abs. partial correlation",
}


def score_one(grn: str, seed: int) -> list[dict]:
    sc, st, _ = simulate(size="demo", seed=seed, grn=grn)
    truth = st.uns["causalged_simulation"]
    sc, st = normalize(sc), normalize(st)
    start = time.perf_counter()
    result = c.causality(st, sc)
    seconds = time.perf_counter() - start
    x = st[:, result.genes].X
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    tables = [result.table,
              c.causality(st, sc, methods=["granger"], covariates="cell_type_fractions").table.assign(method="granger_cov"),
              c.baseline_table(x, genes=result.genes, kind="correlation"),
              c.baseline_table(x, genes=result.genes, kind="partial_correlation")]
    rows = []
    for table in tables:
        for method, part in table.groupby("method", sort=False):
            metrics = c.edge_metrics(part, truth_source=truth["grn_source"], truth_target=truth["grn_target"])
            rows.append({"grn": grn, "seed": seed, "method": method, **metrics, "seconds_all_methods": seconds})
    return rows


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    cols = ["auprc", "base_rate", "precision_at_k", "precision", "recall", "direction", "n_called"]
    agg = scores.groupby(["grn", "method"], sort=False)[cols].agg(["mean", "std"])
    return agg


def fmt(mean, sd, digits=3) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if not pd.isna(sd) else f"{mean:.{digits}f}"


def verdict(agg: pd.DataFrame, grn: str) -> list[str]:
    lines = []
    base_m, base_s = agg.loc[(grn, "correlation"), ("auprc", "mean")], agg.loc[(grn, "correlation"), ("auprc", "std")]
    for method in ("granger", "granger_cov", "linear_ridge", "knn_cells"):
        m, s = agg.loc[(grn, method), ("auprc", "mean")], agg.loc[(grn, method), ("auprc", "std")]
        margin = m - base_m
        spread = max(s, base_s)
        beats = margin > spread
        lines.append(f"- `{method}`: AUPRC {m:.3f} vs correlation {base_m:.3f} (margin {margin:+.3f}, spread over seeds {spread:.3f}): "
                     + ("**beats the baseline by more than the spread**." if beats else "**does not** beat the baseline by more than the spread (a miss)."))
    return lines


def real_top_pairs(n_top: int = 10) -> tuple[list[str], dict]:
    lines, found = [], {}
    for label, name in REAL.items():
        folder = DATA / name
        if not (folder / "st.h5ad").exists():
            lines.append(f"- {label}: data not found under {folder}; skipped.")
            continue
        st = normalize(read_h5ad(folder / "st.h5ad", role="st"))
        sc = normalize(read_h5ad(folder / "sc.h5ad", role="sc"))
        shared = [g for g in st.var_names if g in set(sc.var_names)]
        st = st[:, shared].copy()
        start = time.perf_counter()
        result = c.causality(st, sc)
        seconds = time.perf_counter() - start
        found[label] = (result, seconds)
    return lines, found


def timing(n_spots: int = 3000, n_genes: int = 100) -> float:
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 100, (n_spots, 2))
    x = rng.gamma(2.0, 1.0, (n_spots, n_genes))
    start = time.perf_counter()
    nb = c.spatial_neighbors(coords, n_neighbors=8)
    c.granger_test(x, nb, genes=[f"g{i}" for i in range(n_genes)])
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "causality.md")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    rows = [r for grn in ("spatial", "cell") for seed in seeds for r in score_one(grn, seed)]
    scores = pd.DataFrame(rows)
    scores.to_csv(args.output.with_suffix(".scores.csv"), index=False)
    agg = summarize(scores)
    skipped, real = real_top_pairs()
    seconds_3000 = timing()

    out = ["# Causal analysis: validation on simulated data, real top pairs", "",
           f"Written by `benchmarks/causality.py` (seeds {', '.join(map(str, seeds))}; {time.perf_counter() - t0:.0f} s on this machine). "
           "Method: `causalged/causality.py` and method.md section 8; outputs: [output.md](output.md#causality).", "",
           "## What is computed", "",
           "- **granger**: for each ordered pair (A, B) of ST panel genes, the F-test of adding lag(A) to "
           "`B ~ 1 + lag(B)`; the lag of a gene at a spot is its mean over the 8 nearest other spots (the ordering is this "
           "neighbourhood graph: space has no arrow of time). Benjamini-Hochberg q-values over all ordered pairs; called at q < 0.05. "
           "The scRNA-seq reference has no spatial ordering, so no Granger test is run on it.",
           "- **linear_ridge**: causal linearization (W = -T^-1) of the default method's kernel-ridge view, which predicts each panel "
           "gene from the other panel genes' measured maps; T is exact because that view is linear in them.",
           "- **knn_cells**: the same linearization of a spot-wise generator built from the reference: a spot's panel profile -> its "
           "50 most similar reference cells -> every gene (methods/knn.py). T by finite differences.",
           "- What is perturbed: the measured (z-scored) ST map of one panel gene, +1 SD at every spot; T[a, b] is the mean "
           "change of the model's prediction of b, in SD; T[a, a] = 1 (the intervention). Inverse: Tikhonov, 1e-3 x the mean "
           "squared singular value of T; W divided by each target's own decay; edges called at |W| >= 0.1.",
           f"- Not computed: {c.NOT_RESPONSIVE['causalged']}. The other views of the imputers are gene-wise in the same way.",
           "- Baselines (undirected, both orientations scored alike): |Pearson correlation| between the genes' ST maps, and "
           "|partial correlation| from the shrunk (5 %) inverse correlation matrix. Their `precision`/`recall` use |value| >= 0.1.",
           "", "## Simulated data", "",
           "`causalged simulate` sizes `demo` (600 spots on a 24 x 25 lattice, 100 panel genes, 1,500 reference cells). Two network modes:",
           "",
           "- `cell` (the demo data): an edge i -> j acts within each cell. It leaves no spatial trace beyond co-expression.",
           "- `spatial` (`simulate(grn=\"spatial\")`, off by default): an edge i -> j means gene i's activity in the 8 neighbouring "
           "spots (centred and scaled over the tissue) shifts j's log-rate in every cell of the spot, a paracrine signal "
           "(a secreted ligand and the program it induces); no within-cell regulation. Reference cells carry the signal of a "
           "random spot's neighbourhood. This is the setting the spatial Granger test is built for.",
           "",
           "Truth: the simulator's directed edges with both genes among the tested panel genes. AUPRC of a random ranking = the base rate. "
           "Mean ± SD over seeds.", ""]
    for grn in ("spatial", "cell"):
        out += [f"### Network mode `{grn}`", "",
                "| method | AUPRC | base rate | precision at K | precision (called) | recall (called) | edges called | true edge beats its reverse |",
                "|---|---|---|---|---|---|---|---|"]
        for method in LABELS:
            if (grn, method) not in agg.index:
                continue
            r = agg.loc[(grn, method)]
            out.append(f"| {LABELS[method]} | {fmt(r[('auprc', 'mean')], r[('auprc', 'std')])} | {fmt(r[('base_rate', 'mean')], r[('base_rate', 'std')])} | "
                       f"{fmt(r[('precision_at_k', 'mean')], r[('precision_at_k', 'std')])} | {fmt(r[('precision', 'mean')], r[('precision', 'std')])} | "
                       f"{fmt(r[('recall', 'mean')], r[('recall', 'std')])} | {fmt(r[('n_called', 'mean')], r[('n_called', 'std')], 0)} | "
                       f"{fmt(r[('direction', 'mean')], r[('direction', 'std')])} |")
        out += ["", "Against the correlation baseline (the target: a margin larger than the spread over seeds):", "", *verdict(agg, grn), ""]
    out += ["### Reading", "",
            READING, "",
            "## Real data (no truth)", "",
            "osmFISH and MERFISH have no known network, so nothing here is a score: the top pairs are listed for a reader who knows "
            "the tissue. Panel genes shared with the reference, log-normalized.", "", *skipped]
    for label, (result, seconds) in real.items():
        out += [f"### {label}", "", f"{result.info['n_genes']} genes, {result.info['n_spots']} spots, {result.info['n_pairs']} ordered pairs, "
                f"{seconds:.1f} s for all three methods; called: " + ", ".join(f"{m} {n}" for m, n in result.info["n_called"].items()) + ".", "",
                "| rank | granger pair | F | q | effect | linear_ridge pair | W | knn_cells pair | W |", "|---|---|---|---|---|---|---|---|---|"]
        tops = {m: result.table[result.table.method == m].nlargest(10, "statistic").reset_index(drop=True) for m in ("granger", "linear_ridge", "knn_cells")}
        for i in range(10):
            g, lr, kn = (tops[m].iloc[i] for m in ("granger", "linear_ridge", "knn_cells"))
            out.append(f"| {i + 1} | {g.source} -> {g.target} | {g.statistic:.1f} | {g.q_value:.2g} | {g.effect:+.2f} | "
                       f"{lr.source} -> {lr.target} | {lr.effect:+.2f} | {kn.source} -> {kn.target} | {kn.effect:+.2f} |")
        out.append("")
    out += ["## Speed", "",
            f"The Granger test over 100 genes (9,900 ordered pairs) at 3,000 spots: {seconds_3000:.1f} s on one core of this machine "
            "(target: under 2 minutes on 2 cores). Cost: one QR per target gene and one matrix product over all sources, "
            "O(spots x genes^2): quadratic in the gene count, hence `--max-genes` (default 100).", "",
            f"Per-seed scores: [causality.scores.csv](causality.scores.csv).", ""]
    write_text_atomic("\n".join(out), args.output)
    print(args.output)


if __name__ == "__main__":
    main()
