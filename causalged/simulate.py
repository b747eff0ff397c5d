"""Paired demo data with a known answer: scRNA-seq cells and spot-level ST from one tissue.

The generator places cell types in spatial domains, drives genes with a known directed
regulatory network (a linear structural model in log space, evaluated in topological order),
and draws overdispersed counts. Spots pool several cells, so ST is lower resolution than the
reference; the ST panel measures a subset of the genes with its own per-gene capture
efficiency (a platform effect). Same seed, same data.

Stored ground truth (for tests and causal analysis):

- ``.uns["causalged_simulation"]["grn_source" | "grn_target" | "grn_weight"]``: network edges;
- sc ``.obs["cell_type"]``; st ``.obs["domain"]``, ``.obs["n_cells"]``;
- st ``.obsm["cell_type_fractions"]``: composition of each spot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class SimulationSize:
    n_genes: int
    n_cells: int
    grid: tuple[int, int]  # ST spots on a rows x columns lattice
    n_types: int
    n_domains: int
    panel_fraction: float
    n_requested: int  # genes outside the panel listed in the demo gene list


SIZES = {
    # < 1 MB on disk: committed under tests/data for the Nextflow test profile and unit tests.
    "tiny": SimulationSize(n_genes=48, n_cells=160, grid=(9, 10), n_types=4, n_domains=3, panel_fraction=0.6, n_requested=6),
    # the README demo: the whole pipeline runs in minutes on 2 CPU cores.
    "demo": SimulationSize(n_genes=200, n_cells=1500, grid=(24, 25), n_types=6, n_domains=4, panel_fraction=0.5, n_requested=20),
}


#: Where an edge i -> j of the network acts. ``cell``: within the cell (the default, the demo data);
#: ``spatial``: through neighbouring spots (see :func:`simulate`).
GRN_MODES = ("cell", "spatial")


def simulate(*, size: str = "demo", seed: int = 0, grn: str = "cell") -> tuple[ad.AnnData, ad.AnnData, list[str]]:
    """Return (scRNA-seq counts, ST counts, genes to impute) for a named size.

    ``grn="spatial"`` (off by default, so the demo data do not change) makes the network leave
    a spatial trace: an edge i -> j means that gene i's activity in the 8 neighbouring spots
    (their mean over cells and spots, the spot itself excluded; centred and scaled over the
    tissue, so an edge of weight w moves the target's log-rate by w per SD) shifts j's log-rate in every
    cell of the spot, a paracrine signal (a secreted ligand and its target program) instead of
    a within-cell one; there is no within-cell regulation then. The reference cells, which are
    dissociated, each keep the signal of a random spot's neighbourhood of the same tissue.
    """
    if size not in SIZES:
        raise ValueError(f"unknown simulation size {size!r}; choose one of {sorted(SIZES)}")
    if grn not in GRN_MODES:
        raise ValueError(f"unknown network mode {grn!r}; choose one of {GRN_MODES}")
    if grn == "spatial":
        return _simulate_spatial(SIZES[size], size=size, seed=seed)
    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    genes = [f"Gene{i:04d}" for i in range(cfg.n_genes)]

    # Regulatory network: a random DAG, genes ordered topologically by index.
    source, target, weight = _random_dag(cfg.n_genes, rng)
    base = rng.normal(-0.5, 1.0, cfg.n_genes)  # baseline log-expression
    type_programs = rng.normal(0.0, 1.5, (cfg.n_types, cfg.n_genes)) * (rng.random((cfg.n_types, cfg.n_genes)) < 0.4)

    # scRNA-seq: single cells.
    cell_types = rng.integers(0, cfg.n_types, cfg.n_cells)
    sc_rate = _expression_rates(cell_types, type_programs, base, source, target, weight, rng)
    sc_depth = rng.lognormal(0.0, 0.3, cfg.n_cells)[:, None] * 3.0
    sc_counts = _overdispersed_counts(sc_rate * sc_depth, dispersion=0.5, rng=rng)

    # ST: spots on a lattice, each pooling cells drawn from its domain's type composition.
    coords, domain, domain_mix, cells_per_spot = _tissue_layout(cfg, rng)
    rows, cols = cfg.grid
    n_spots = len(coords)
    fractions = np.zeros((n_spots, cfg.n_types))
    st_rate = np.zeros((n_spots, cfg.n_genes))
    for spot in range(n_spots):
        types = rng.choice(cfg.n_types, cells_per_spot[spot], p=domain_mix[domain[spot]])
        st_rate[spot] = _expression_rates(types, type_programs, base, source, target, weight, rng).sum(axis=0)
        fractions[spot] = np.bincount(types, minlength=cfg.n_types) / len(types)
    capture = rng.lognormal(0.0, 0.4, cfg.n_genes)  # platform effect per gene
    spot_efficiency = rng.lognormal(0.0, 0.25, n_spots)[:, None]  # per-spot capture (tissue depth, permeabilisation)
    st_counts_all = _overdispersed_counts(st_rate * capture * spot_efficiency, dispersion=0.3, rng=rng)

    n_panel = int(round(cfg.panel_fraction * cfg.n_genes))
    panel = np.sort(rng.choice(cfg.n_genes, n_panel, replace=False))
    outside = np.setdiff1d(np.arange(cfg.n_genes), panel)
    requested = sorted(genes[i] for i in rng.choice(outside, min(cfg.n_requested, len(outside)), replace=False))

    truth = {
        "seed": seed, "size": size, **{k: v for k, v in asdict(cfg).items() if k != "grid"},
        "grid_rows": rows, "grid_cols": cols,
        "grn_source": np.array([genes[i] for i in source]), "grn_target": np.array([genes[i] for i in target]),
        "grn_weight": weight,
    }
    sc_data, st_data = _package(sc_counts, cell_types, st_counts_all, domain, cells_per_spot, coords, fractions, genes, panel, outside, truth)
    return sc_data, st_data, requested


def _simulate_spatial(cfg: SimulationSize, *, size: str, seed: int) -> tuple[ad.AnnData, ad.AnnData, list[str]]:
    """The ``grn="spatial"`` variant of :func:`simulate`: regulation through neighbouring spots, vectorized over cells."""
    rng = np.random.default_rng(seed)
    genes = [f"Gene{i:04d}" for i in range(cfg.n_genes)]
    source, target, weight = _random_dag(cfg.n_genes, rng)
    base = rng.normal(-0.5, 1.0, cfg.n_genes)
    type_programs = rng.normal(0.0, 1.5, (cfg.n_types, cfg.n_genes)) * (rng.random((cfg.n_types, cfg.n_genes)) < 0.4)
    coords, domain, domain_mix, cells_per_spot = _tissue_layout(cfg, rng)
    rows, cols = cfg.grid
    n_spots = len(coords)
    spot_of_cell = np.repeat(np.arange(n_spots), cells_per_spot)
    # one type per tissue cell, drawn from its spot's domain mix (inverse CDF, vectorized)
    cdf = np.cumsum(domain_mix, axis=1)[domain[spot_of_cell]]
    tissue_types = np.minimum((rng.random(len(spot_of_cell))[:, None] > cdf).sum(axis=1), cfg.n_types - 1)
    sc_types = rng.integers(0, cfg.n_types, cfg.n_cells)
    sc_spot = rng.integers(0, n_spots, cfg.n_cells)  # the tissue neighbourhood a reference cell came from

    # spot -> cells mean, and the 8-neighbour (queen) mean over other spots, as sparse operators
    pool = sp.csr_matrix((1.0 / cells_per_spot[spot_of_cell], (spot_of_cell, np.arange(len(spot_of_cell)))), shape=(n_spots, len(spot_of_cell)))
    grid_dist = np.abs(coords[:, None, :] - coords[None, :, :]).max(-1) / 100.0
    adjacency = sp.csr_matrix((grid_dist > 0) & (grid_dist < 1.5), dtype=float)
    neighbour_mean = sp.diags(1.0 / np.asarray(adjacency.sum(axis=1)).ravel()) @ adjacency

    types = np.concatenate([tissue_types, sc_types])
    context = np.concatenate([spot_of_cell, sc_spot])  # the spot whose neighbourhood signals to each cell
    n_tissue = len(spot_of_cell)
    log_rate = base[None, :] + type_programs[types] + rng.normal(0, 0.3, (len(types), cfg.n_genes))
    signal = np.zeros((n_spots, cfg.n_genes))  # neighbourhood activity of each gene around each spot
    order = np.argsort(target, kind="stable")
    src, tgt, w = source[order], target[order], weight[order]
    starts = np.searchsorted(tgt, np.arange(cfg.n_genes))
    ends = np.searchsorted(tgt, np.arange(cfg.n_genes), side="right")
    for j in range(cfg.n_genes):
        incoming = slice(starts[j], ends[j])
        drive = signal[context][:, src[incoming]] @ w[incoming] if ends[j] > starts[j] else 0.0
        log_rate[:, j] = log_rate[:, j] + drive
        activity = np.tanh(log_rate[:n_tissue, j] - base[j])
        around = neighbour_mean @ (pool @ activity)
        signal[:, j] = (around - around.mean()) / (around.std() + 1e-9)  # centred and scaled over the tissue
    rate = np.exp(np.clip(log_rate, -6, 4))
    sc_rate, cell_rate = rate[n_tissue:], rate[:n_tissue]

    sc_depth = rng.lognormal(0.0, 0.3, cfg.n_cells)[:, None] * 3.0
    sc_counts = _overdispersed_counts(sc_rate * sc_depth, dispersion=0.5, rng=rng)
    st_rate = np.asarray(sp.csr_matrix((np.ones(n_tissue), (spot_of_cell, np.arange(n_tissue))), shape=(n_spots, n_tissue)) @ cell_rate)
    fractions = np.zeros((n_spots, cfg.n_types))
    np.add.at(fractions, (spot_of_cell, tissue_types), 1.0)
    fractions /= cells_per_spot[:, None]
    capture = rng.lognormal(0.0, 0.4, cfg.n_genes)
    spot_efficiency = rng.lognormal(0.0, 0.25, n_spots)[:, None]
    st_counts_all = _overdispersed_counts(st_rate * capture * spot_efficiency, dispersion=0.3, rng=rng)
    n_panel = int(round(cfg.panel_fraction * cfg.n_genes))
    panel = np.sort(rng.choice(cfg.n_genes, n_panel, replace=False))
    outside = np.setdiff1d(np.arange(cfg.n_genes), panel)
    requested = sorted(genes[i] for i in rng.choice(outside, min(cfg.n_requested, len(outside)), replace=False))
    truth = {
        "seed": seed, "size": size, "grn_mode": "spatial", **{k: v for k, v in asdict(cfg).items() if k != "grid"},
        "grid_rows": rows, "grid_cols": cols,
        "grn_source": np.array([genes[i] for i in source]), "grn_target": np.array([genes[i] for i in target]),
        "grn_weight": weight,
    }
    sc_data, st_data = _package(sc_counts, sc_types, st_counts_all, domain, cells_per_spot, coords, fractions, genes, panel, outside, truth)
    return sc_data, st_data, requested


def _tissue_layout(cfg: SimulationSize, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spots on the lattice, their nearest-centre domains, each domain's cell-type mix and the cells per spot."""
    rows, cols = cfg.grid
    yy, xx = np.mgrid[0:rows, 0:cols]
    coords = np.column_stack([xx.ravel(), yy.ravel()]).astype(float) * 100.0
    centres = coords[rng.choice(len(coords), cfg.n_domains, replace=False)]
    domain = np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    domain_mix = rng.dirichlet(np.full(cfg.n_types, 0.25), cfg.n_domains)
    cells_per_spot = 1 + rng.poisson(4, len(coords))
    return coords, domain, domain_mix, cells_per_spot


def _package(sc_counts, cell_types, st_counts_all, domain, cells_per_spot, coords, fractions, genes, panel, outside, truth):
    """The AnnData pair both network modes return, with the simulator's truth (the held-back
    counts of the genes outside the panel, so imputed targets can be checked too)."""
    n_spots = len(coords)
    sc_data = ad.AnnData(
        X=sp.csr_matrix(sc_counts, dtype=np.float32),
        obs=pd.DataFrame({"cell_type": pd.Categorical([f"type{t}" for t in cell_types])}, index=[f"cell{i:05d}" for i in range(len(sc_counts))]),
        var=pd.DataFrame(index=genes),
    )
    st_data = ad.AnnData(
        X=sp.csr_matrix(st_counts_all[:, panel], dtype=np.float32),
        obs=pd.DataFrame(
            {"domain": pd.Categorical([f"domain{d}" for d in domain]), "n_cells": cells_per_spot},
            index=[f"spot{i:04d}" for i in range(n_spots)],
        ),
        var=pd.DataFrame(index=[genes[i] for i in panel]),
    )
    st_data.obsm["spatial"] = coords
    st_data.obsm["cell_type_fractions"] = fractions
    st_data.uns["causalged_simulation"] = {**truth, "unmeasured_genes": np.array([genes[i] for i in outside])}
    st_data.obsm["unmeasured_counts"] = st_counts_all[:, outside].astype(np.float32)
    sc_data.uns["causalged_simulation"] = truth
    return sc_data, st_data


def _random_dag(n_genes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges i -> j with i < j: about 1.5 parents per gene among earlier genes."""
    sources, targets = [], []
    for j in range(1, n_genes):
        n_parents = min(j, rng.poisson(1.5))
        for i in rng.choice(j, n_parents, replace=False):
            sources.append(int(i))
            targets.append(j)
    weights = rng.choice([-1.0, 1.0], len(sources)) * rng.uniform(0.3, 0.8, len(sources))
    return np.array(sources, dtype=int), np.array(targets, dtype=int), weights


def _expression_rates(types, type_programs, base, source, target, weight, rng) -> np.ndarray:
    """Per-cell expression rates: type program plus regulation propagated along the DAG."""
    n_cells, n_genes = len(types), len(base)
    log_rate = base[None, :] + type_programs[types] + rng.normal(0, 0.3, (n_cells, n_genes))
    activity = np.zeros((n_cells, n_genes))
    order = np.argsort(target, kind="stable")
    src, tgt, w = source[order], target[order], weight[order]
    starts = np.searchsorted(tgt, np.arange(n_genes))
    ends = np.searchsorted(tgt, np.arange(n_genes), side="right")
    for j in range(n_genes):
        incoming = slice(starts[j], ends[j])
        drive = activity[:, src[incoming]] @ w[incoming] if ends[j] > starts[j] else 0.0
        activity[:, j] = np.tanh(log_rate[:, j] - base[j] + drive)
        log_rate[:, j] = log_rate[:, j] + drive
    return np.exp(np.clip(log_rate, -6, 4))


def _overdispersed_counts(mean: np.ndarray, *, dispersion: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma-Poisson (negative binomial) counts with the given mean; zeros arise naturally."""
    shape = 1.0 / dispersion
    return rng.poisson(rng.gamma(shape, mean / shape)).astype(np.float32)


def write_demo(outdir: str | Path, *, name: str = "demo", size: str = "demo", seed: int = 0, grn: str = "cell") -> dict[str, Path]:
    """Simulate and write ``<name>_sc.h5ad``, ``<name>_st.h5ad``, ``<name>_genes.txt`` and a samplesheet."""
    from causalged.io import write_h5ad_atomic, write_text_atomic

    outdir = Path(outdir)
    paths = {
        "sc": outdir / f"{name}_sc.h5ad",
        "st": outdir / f"{name}_st.h5ad",
        "genes": outdir / f"{name}_genes.txt",
        "samplesheet": outdir / "samplesheet.csv",
    }
    _refuse_foreign_files(paths)
    sc_data, st_data, requested = simulate(size=size, seed=seed, grn=grn)
    write_h5ad_atomic(sc_data, paths["sc"])
    write_h5ad_atomic(st_data, paths["st"])
    write_text_atomic("\n".join(requested) + "\n", paths["genes"])
    sheet = pd.DataFrame([{
        "sample": name, "sc": paths["sc"].resolve(), "st": paths["st"].resolve(),
        "genes": paths["genes"].resolve(), "platform": "simulated",
    }])
    write_text_atomic(sheet.to_csv(index=False), paths["samplesheet"])
    return paths


def _refuse_foreign_files(paths: dict[str, Path]) -> None:
    """Only an earlier simulation's files may be replaced: never a user's samplesheet or data."""
    import h5py

    from causalged.errors import InputError

    def simulated(path: Path) -> bool:
        try:
            with h5py.File(path, "r") as handle:
                return "causalged_simulation" in handle.get("uns", {})
        except OSError:
            return False

    matrices = [paths[k] for k in ("sc", "st") if paths[k].exists()]
    ours = bool(matrices) and all(simulated(p) for p in matrices)
    for path in paths.values():
        if path.exists() and not ours:
            raise InputError(path, "exists and was not written by `causalged simulate`; simulating here would overwrite it",
                             "choose another --outdir (or --name)")
