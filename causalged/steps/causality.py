"""Causal analysis step (optional): directed gene pairs of the normalized panel, for the report.

Runs :func:`causalged.causality.causality` (spatial Granger-style F-test and causal linearization
of a fitted model, docs/causality.md) and writes the pair table, its record, the top pairs as a
MultiQC table and two figures.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from causalged.causality import (DEFAULT_METHODS, DEFAULT_THRESHOLD, NOT_RESPONSIVE, VALIDATION_NOTE, causality, describe, heatmap_figure,
                                 network_figure)

log = logging.getLogger(__name__)


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/causality declares)."""
    outdir = Path(outdir)
    return {
        "csv": outdir / f"{sample}.causality.csv",
        "json": outdir / f"{sample}.causality.json",
        "mqc": outdir / f"{sample}.causality.top_pairs_mqc.tsv",
        "heatmap": outdir / f"{sample}.causality_heatmap.png",
        "network": outdir / f"{sample}.causality_network.png",
    }


def run(*, sample: str, st: Path, sc: Path | None = None, outdir: Path = Path("."), seed: int = 0, methods: str = ",".join(DEFAULT_METHODS),
        max_genes: int = 100, n_neighbors: int = 8, radius: float | None = None, covariates: str | None = None,
        threshold: float = DEFAULT_THRESHOLD, n_top: int = 20) -> dict[str, Path]:
    """File in, file out: read, compute everything, then write every output atomically."""
    from causalged import report
    from causalged.io import check_writable, ensure_not_input, read_h5ad, write_csv_atomic, write_json_atomic

    st_path, sc_path = st, sc
    params = {"max_genes": max_genes, "n_neighbors": n_neighbors, "radius": radius, "covariates": covariates, "threshold": threshold, "seed": seed}
    methods = [m.strip() for m in methods.split(",") if m.strip()] if isinstance(methods, str) else list(methods)
    out = outputs(sample, outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [st_path, sc_path])
    st_data = read_h5ad(st_path, role="st")
    sc_data = read_h5ad(sc_path, role="sc") if sc_path else None
    if sc_data is None:
        methods = [m for m in methods if m == "granger"] or ["granger"]
    result = causality(st_data, sc_data, methods=methods, st_path=st_path, sc_path=sc_path, **params)
    primary = "granger" if "granger" in methods else methods[0]
    top = result.table[result.table["method"] == primary].nlargest(n_top, "statistic")
    mqc = pd.DataFrame({"Sample": [f"{sample}: {s} -> {t}" for s, t in zip(top["source"], top["target"])],
                        **{c: top[c].to_numpy() for c in ("method", "statistic", "p_value", "q_value", "effect")}})
    heat, net = heatmap_figure(result.table, method=primary), network_figure(result.table, method=primary)

    write_csv_atomic(result.table, out["csv"], index=False)
    write_json_atomic({"sample": sample, **result.info}, out["json"])
    report.write_mqc_table(
        mqc, out["mqc"], section_id="causalged_causality", section_name="Causal analysis: top gene pairs",
        description=f"Top {len(top)} ordered pairs by {primary} ({describe(primary)}). {VALIDATION_NOTE} "
                    f"Not computed: {NOT_RESPONSIVE['causalged']}.",
        headers={"p_value": {"format": "{:.2e}"}, "q_value": {"format": "{:.2e}"}},
    )
    report.write_mqc_figure(heat, out["heatmap"], section_id=f"causalged_causality_heatmap_{report.slug(sample)}",
                            section_name=f"Causal analysis heatmap: {sample}", description=f"Genes of the strongest {primary} pairs, source rows, target columns.")
    report.write_mqc_figure(net, out["network"], section_id=f"causalged_causality_network_{report.slug(sample)}",
                            section_name=f"Causal analysis network: {sample}", description=f"The strongest {primary} edges, source to target.")
    log.info("%s causality: %d genes, %d pairs, called %s", sample, len(result.genes), result.info["n_pairs"], result.info["n_called"])
    return {**out, "heatmap_mqc": out["heatmap"].with_name(out["heatmap"].stem + "_mqc.html"),
            "network_mqc": out["network"].with_name(out["network"].stem + "_mqc.html")}
