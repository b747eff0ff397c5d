"""Paired demo data with a known answer: scRNA-seq cells and spot-level ST from one tissue.

Cell types sit in spatial domains, a known directed regulatory network (a linear structural
model in log space) drives the genes, and counts are overdispersed. Spots pool several cells,
so ST is lower resolution than the reference, and the ST panel measures a subset of the genes
with its own per-gene capture efficiency (a platform effect). Same seed, same data.

The named sizes have their own code path, so the committed test data and the demo stay
byte-identical; ``n_cells``, ``n_spots``, ``n_genes`` and ``panel_fraction`` use a chunked
generator (:func:`_simulate_chunked`) that is linear in cells x genes and atlas-sparse.

Stored ground truth (for tests and causal analysis):

- ``.uns["causalged_simulation"]["grn_source" | "grn_target" | "grn_weight"]``: network edges;
- sc ``.obs["cell_type"]``; st ``.obs["domain"]``, ``.obs["n_cells"]``;
- st ``.obsm["cell_type_fractions"]``: composition of each spot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from causalged.io import RowBlocks


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


#: Dense cells x genes entries one chunk of the custom-size generator holds at a time (float32:
#: about 130 MB per array); larger chunks pay less Python overhead, smaller ones less memory.
CHUNK_ENTRIES = 2**25
#: Baseline log-expression mean of custom sizes: about 15 % of reference entries non-zero, as
#: in droplet atlases (the named sizes use -0.5, about 65 %, which small demos need to have signal).
SPARSE_BASE_MEAN = -3.0


def custom_size(base: str = "demo", *, n_cells: int | None = None, n_spots: int | None = None, n_genes: int | None = None,
                panel_fraction: float | None = None) -> SimulationSize:
    """A named size with some of its dimensions replaced; spots fill a near-square lattice
    (``n_spots`` rounded up to rows x columns, at most one row more)."""
    from causalged.errors import InputError

    cfg = SIZES[base]
    checks = (("--n-cells", n_cells, 10), ("--n-spots", n_spots, cfg.n_domains), ("--n-genes", n_genes, 10))
    for option, value, least in checks:
        if value is not None and value < least:
            raise InputError(None, f"{option} must be at least {least}, got {value}", f"pass {option} {least} or more")
    if panel_fraction is not None and not 0 < panel_fraction < 1:
        raise InputError(None, f"--panel-fraction must be in (0, 1), got {panel_fraction}", "pass a fraction such as 0.25")
    grid = cfg.grid
    if n_spots is not None:
        rows = max(1, int(np.sqrt(n_spots)))
        grid = (rows, -(-n_spots // rows))
    return SimulationSize(n_genes=n_genes or cfg.n_genes, n_cells=n_cells or cfg.n_cells, grid=grid, n_types=cfg.n_types,
                          n_domains=cfg.n_domains, panel_fraction=panel_fraction or cfg.panel_fraction, n_requested=cfg.n_requested)


#: Where an edge i -> j of the network acts. ``cell``: within the cell (the default, the demo data);
#: ``spatial``: through neighbouring spots (see :func:`simulate`).
GRN_MODES = ("cell", "spatial")


def simulate(*, size: str = "demo", seed: int = 0, grn: str = "cell", n_cells: int | None = None, n_spots: int | None = None,
             n_genes: int | None = None, panel_fraction: float | None = None,
             base_mean: float | None = None) -> tuple[ad.AnnData, ad.AnnData, list[str]]:
    """Return (scRNA-seq counts, ST counts, genes to impute) for a named size.

    Any of ``n_cells``, ``n_spots``, ``n_genes``, ``panel_fraction``, ``base_mean`` overrides that
    dimension of ``size`` and switches to the chunked generator (sparse throughout, network mode
    ``cell`` only: the spatial mode's neighbour operators are quadratic in spots). ``base_mean``
    is the genes' mean baseline log-rate there (default :data:`SPARSE_BASE_MEAN`): lower is sparser.

    ``grn="spatial"`` (off by default, so the demo data do not change) makes the network leave
    a spatial trace: an edge i -> j means that gene i's activity in the 8 neighbouring spots
    (their mean over cells and spots, the spot itself excluded; centred and scaled over the
    tissue, so an edge of weight w moves the target's log-rate by w per SD) shifts j's log-rate in every
    cell of the spot, a paracrine signal (a secreted ligand and its target program) instead of
    a within-cell one; there is no within-cell regulation then. The reference cells, which are
    dissociated, each keep the signal of a random spot's neighbourhood of the same tissue.
    """
    sc_data, st_data, requested = _generate(size=size, seed=seed, grn=grn, n_cells=n_cells, n_spots=n_spots, n_genes=n_genes,
                                            panel_fraction=panel_fraction, base_mean=base_mean)
    return (sc_data.to_memory() if isinstance(sc_data, RowBlocks) else sc_data), st_data, requested


def _generate(*, size: str, seed: int, grn: str, base_mean: float | None = None, **overrides) -> tuple[ad.AnnData | RowBlocks, ad.AnnData, list[str]]:
    """:func:`simulate`, with a custom size's reference left as row blocks (written without holding it)."""
    if size not in SIZES:
        raise ValueError(f"unknown simulation size {size!r}; choose one of {sorted(SIZES)}")
    if grn not in GRN_MODES:
        raise ValueError(f"unknown network mode {grn!r}; choose one of {GRN_MODES}")
    if any(v is not None for v in overrides.values()) or base_mean is not None:
        if grn != "cell":
            from causalged.errors import InputError

            raise InputError(None, "--grn spatial supports the named sizes only", "drop --grn spatial, or the size options")
        return _simulate_chunked(custom_size(size, **overrides), seed=seed, base_mean=SPARSE_BASE_MEAN if base_mean is None else base_mean)
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


def _simulate_chunked(cfg: SimulationSize, *, seed: int, base_mean: float = SPARSE_BASE_MEAN) -> tuple[RowBlocks, ad.AnnData, list[str]]:
    """The custom-size generator: the cell-mode model, evaluated chunk by chunk into sparse counts.

    Each chunk of reference cells (and of spots, with their tissue cells) draws from its own
    child stream of ``seed``, so the result does not depend on the machine, only on the chunk
    size; the network is applied level by level (:func:`_level_rates`), not gene by gene. The
    reference comes back as row blocks, generated as they are written, so an atlas is never
    held in memory; ``base_mean`` (the genes' mean baseline log-rate) sets its sparsity.
    """
    rng = np.random.default_rng(seed)
    genes = [f"Gene{i:04d}" for i in range(cfg.n_genes)]
    source, target, weight = _random_dag(cfg.n_genes, rng)
    base = rng.normal(base_mean, 1.0, cfg.n_genes)
    type_programs = rng.normal(0.0, 1.5, (cfg.n_types, cfg.n_genes)) * (rng.random((cfg.n_types, cfg.n_genes)) < 0.4)
    network = _Network(source, target, weight, cfg.n_genes)
    per_chunk = max(1, CHUNK_ENTRIES // cfg.n_genes)

    cell_types = rng.integers(0, cfg.n_types, cfg.n_cells)
    sc_depth = rng.lognormal(0.0, 0.3, cfg.n_cells) * 3.0

    def sc_chunk(c: int) -> dict[str, sp.csr_matrix]:
        part, child = slice(c * per_chunk, (c + 1) * per_chunk), np.random.default_rng([seed, 1, c])
        rate = _level_rates(cell_types[part], type_programs, base, network, child) * sc_depth[part, None]
        return {"X": _sparse_counts(rate, dispersion=0.5, rng=child)}

    def sc_blocks():  # child streams only: generating them later than the spots changes nothing
        return _in_threads(sc_chunk, range(-(-cfg.n_cells // per_chunk)))

    coords, domain, domain_mix, cells_per_spot = _tissue_layout(cfg, rng)
    rows, cols = cfg.grid
    n_spots = len(coords)
    spot_of_cell = np.repeat(np.arange(n_spots), cells_per_spot)
    cdf = np.cumsum(domain_mix, axis=1)[domain[spot_of_cell]]  # one type per tissue cell, inverse CDF
    tissue_types = np.minimum((rng.random(len(spot_of_cell))[:, None] > cdf).sum(axis=1), cfg.n_types - 1)
    capture = rng.lognormal(0.0, 0.4, cfg.n_genes)
    spot_efficiency = rng.lognormal(0.0, 0.25, n_spots)
    first_cell = np.concatenate([[0], np.cumsum(cells_per_spot)])
    spots_per_chunk = max(1, per_chunk // max(1, int(cells_per_spot.max())))

    def st_chunk(c: int) -> sp.csr_matrix:
        start, child = c * spots_per_chunk, np.random.default_rng([seed, 2, c])
        stop = min(start + spots_per_chunk, n_spots)
        cells = np.arange(first_cell[start], first_cell[stop])
        pool = sp.csr_matrix((np.ones(len(cells)), (spot_of_cell[cells] - start, np.arange(len(cells)))), shape=(stop - start, len(cells)))
        st_rate = pool @ _level_rates(tissue_types[cells], type_programs, base, network, child)
        st_rate *= capture[None, :] * spot_efficiency[start:stop, None]
        return _sparse_counts(st_rate, dispersion=0.3, rng=child)

    st_chunks = list(_in_threads(st_chunk, range(-(-n_spots // spots_per_chunk))))
    fractions = np.zeros((n_spots, cfg.n_types))
    np.add.at(fractions, (spot_of_cell, tissue_types), 1.0)
    fractions /= cells_per_spot[:, None]

    n_panel = int(round(cfg.panel_fraction * cfg.n_genes))
    panel = np.sort(rng.choice(cfg.n_genes, n_panel, replace=False))
    outside = np.setdiff1d(np.arange(cfg.n_genes), panel)
    requested = sorted(genes[i] for i in rng.choice(outside, min(cfg.n_requested, len(outside)), replace=False))
    truth = {
        "seed": seed, "size": "custom", "generator": "chunked", **{k: v for k, v in asdict(cfg).items() if k != "grid"},
        "grid_rows": rows, "grid_cols": cols, "n_spots": n_spots, "base_mean": base_mean,
        "grn_source": np.array([genes[i] for i in source]), "grn_target": np.array([genes[i] for i in target]),
        "grn_weight": weight,
    }
    st_counts_all = sp.vstack(st_chunks, format="csc")  # column slices (panel / outside) are cheap on CSC
    del st_chunks
    sc_skeleton, st_data = _package(None, cell_types, st_counts_all, domain, cells_per_spot, coords, fractions, genes, panel, outside, truth)
    st_data.obsm["unmeasured_counts"] = sp.csr_matrix(st_data.obsm["unmeasured_counts"])
    return RowBlocks(sc_skeleton, sc_blocks), st_data, requested


def _in_threads(task, items) -> Iterator:
    """``map(task, items)`` on the task's CPUs, in order, with at most one result per thread
    waiting: numpy's generators and ufuncs release the GIL, and each chunk has its own stream."""
    from concurrent.futures import ThreadPoolExecutor

    from causalged.threads import available_cpus

    items = iter(items)
    workers = available_cpus()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque(pool.submit(task, item) for item in islice(items, workers))
        while pending:
            result = pending.popleft().result()
            for item in islice(items, 1):
                pending.append(pool.submit(task, item))
            yield result


class _Network:
    """The DAG with its genes sorted by topological level (a gene's level is one more than its
    deepest parent's), so that each level is one contiguous block of columns computed at once."""

    def __init__(self, source: np.ndarray, target: np.ndarray, weight: np.ndarray, n_genes: int):
        depth = np.zeros(n_genes, dtype=int)
        while True:  # longest-path depth by relaxation: as many rounds as the DAG is deep
            deeper = np.zeros(n_genes, dtype=int)
            np.maximum.at(deeper, target, depth[source] + 1)
            if np.array_equal(deeper, depth):
                break
            depth = deeper
        self.order = np.argsort(depth, kind="stable")  # position -> gene
        self.restore = np.argsort(self.order)  # gene -> position
        self.bounds = np.searchsorted(depth[self.order], np.arange(depth.max() + 2))
        position = self.restore
        self.weights = sp.csc_matrix((weight, (position[source], position[target])), shape=(n_genes, n_genes), dtype=np.float32)


def _level_rates(types: np.ndarray, type_programs: np.ndarray, base: np.ndarray, network: _Network,
                 rng: np.random.Generator) -> np.ndarray:
    """:func:`_expression_rates` in float32, one DAG level at a time (a parent always sits on
    an earlier level, so its activity is final when its children read it). Genes x cells
    inside, so that a level and all its possible parents are contiguous rows; cells x genes
    (in gene order) out."""
    order = network.order
    offset = base[order].astype(np.float32)[:, None]
    log_rate = np.float32(0.3) * rng.standard_normal((len(order), len(types)), dtype=np.float32)
    log_rate += offset
    log_rate += type_programs[:, order].T.astype(np.float32)[:, types]
    activity = np.zeros_like(log_rate)
    for level, (start, stop) in enumerate(zip(network.bounds[:-1], network.bounds[1:])):
        if level:  # parents sit on earlier levels, above the block
            log_rate[start:stop] += network.weights[:start, start:stop].T @ activity[:start]
        activity[start:stop] = np.tanh(log_rate[start:stop] - offset[start:stop])
    np.clip(log_rate, -6, 4, out=log_rate)
    return np.exp(log_rate, out=log_rate)[network.restore].T


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
    sc_data = ad.AnnData(  # sc_counts None: the chunked generator's reference, written in row blocks
        X=None if sc_counts is None else sp.csr_matrix(sc_counts, dtype=np.float32),
        obs=pd.DataFrame({"cell_type": pd.Categorical([f"type{t}" for t in cell_types])}, index=[f"cell{i:05d}" for i in range(len(cell_types))]),
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


def _sparse_counts(mean: np.ndarray, *, dispersion: float, rng: np.random.Generator) -> sp.csr_matrix:
    """:func:`_overdispersed_counts` for the chunked generator: float32 gamma draws (faster), CSR out."""
    shape = 1.0 / dispersion
    rate = rng.standard_gamma(shape, size=mean.shape, dtype=np.float32)
    rate *= mean / np.float32(shape)
    return sp.csr_matrix(rng.poisson(rate).astype(np.float32))


def write_demo(outdir: str | Path, *, name: str = "demo", size: str = "demo", seed: int = 0, grn: str = "cell", **dimensions) -> dict[str, Path]:
    """Simulate and write ``<name>_sc.h5ad``, ``<name>_st.h5ad``, ``<name>_genes.txt`` and a samplesheet.

    ``dimensions`` (``n_cells``, ``n_spots``, ``n_genes``, ``panel_fraction``, ``base_mean``) go to
    :func:`simulate`; a custom size's reference is written a block of cells at a time.
    """
    from causalged.io import write_h5ad_atomic, write_text_atomic

    outdir = Path(outdir)
    paths = {
        "sc": outdir / f"{name}_sc.h5ad",
        "st": outdir / f"{name}_st.h5ad",
        "genes": outdir / f"{name}_genes.txt",
        "samplesheet": outdir / "samplesheet.csv",
    }
    _refuse_foreign_files(paths)
    sc_data, st_data, requested = _generate(size=size, seed=seed, grn=grn, **dimensions)
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
