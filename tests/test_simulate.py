"""The demo-data generator: deterministic, paired, realistic sparsity, known network stored."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from causalged.cli import cli
from causalged.simulate import simulate


def test_deterministic_for_a_seed():
    a_sc, a_st, a_genes = simulate(size="tiny", seed=7)
    b_sc, b_st, b_genes = simulate(size="tiny", seed=7)
    c_sc, _, _ = simulate(size="tiny", seed=8)
    assert (a_sc.X != b_sc.X).nnz == 0 and (a_st.X != b_st.X).nnz == 0 and a_genes == b_genes
    assert (a_sc.X != c_sc.X).nnz > 0


def test_structure_of_the_pair():
    sc_data, st_data, requested = simulate(size="tiny", seed=0)
    assert set(st_data.var_names) < set(sc_data.var_names)  # ST panel is a subset of the reference
    assert set(requested).isdisjoint(st_data.var_names) and set(requested) <= set(sc_data.var_names)
    counts = sc_data.X.toarray()
    assert np.all(counts == np.round(counts))
    sparsity = float((counts == 0).mean())
    assert 0.2 < sparsity < 0.9
    assert st_data.obsm["spatial"].shape == (st_data.n_obs, 2)
    assert st_data.obs["n_cells"].min() >= 1 and st_data.obs["n_cells"].mean() > 2  # spots pool cells
    np.testing.assert_allclose(st_data.obsm["cell_type_fractions"].sum(axis=1), 1.0)
    sim = sc_data.uns["causalged_simulation"]
    assert len(sim["grn_source"]) == len(sim["grn_target"]) == len(sim["grn_weight"]) > 0
    order = {g: i for i, g in enumerate(sc_data.var_names)}
    assert all(order[s] < order[t] for s, t in zip(sim["grn_source"], sim["grn_target"]))  # a DAG in gene order


def test_regulated_genes_correlate_with_their_parents():
    sc_data, _, _ = simulate(size="demo", seed=0)
    sim = sc_data.uns["causalged_simulation"]
    logx = np.log1p(sc_data.X.toarray())
    idx = {g: i for i, g in enumerate(sc_data.var_names)}
    strong = np.abs(sim["grn_weight"]) > 0.6
    corr = [np.corrcoef(logx[:, idx[s]], logx[:, idx[t]])[0, 1] * np.sign(w)
            for s, t, w in zip(sim["grn_source"][strong], sim["grn_target"][strong], sim["grn_weight"][strong])]
    assert np.nanmean(corr) > 0.05  # edges leave a signed trace in the data


def test_cli_writes_the_files(tmp_path):
    result = CliRunner().invoke(cli, ["simulate", "--size", "tiny", "--outdir", str(tmp_path), "--name", "t"])
    assert result.exit_code == 0, result.output
    for name in ("t_sc.h5ad", "t_st.h5ad", "t_genes.txt", "samplesheet.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "t_sc.h5ad").stat().st_size < 1_000_000


def test_named_sizes_still_reproduce_the_committed_test_data():
    """The size options must not move the named sizes: tests/data was written by `--size tiny`."""
    import anndata as ad
    from pathlib import Path

    sc_data, st_data, requested = simulate(size="tiny", seed=0)
    data = Path(__file__).parent / "data"
    assert (ad.read_h5ad(data / "tiny_sc.h5ad").X != sc_data.X).nnz == 0
    assert (ad.read_h5ad(data / "tiny_st.h5ad").X != st_data.X).nnz == 0
    assert (data / "tiny_genes.txt").read_text().split() == requested


def test_custom_size_gives_the_asked_dimensions_sparse_and_deterministic():
    sc_data, st_data, requested = simulate(n_cells=900, n_spots=150, n_genes=300, panel_fraction=0.2, seed=3)
    assert sc_data.shape == (900, 300) and st_data.n_vars == 60
    rows, cols = st_data.uns["causalged_simulation"]["grid_rows"], st_data.uns["causalged_simulation"]["grid_cols"]
    assert rows * cols == st_data.n_obs and 150 <= st_data.n_obs < 150 + cols  # the lattice's last row filled up
    assert sc_data.uns["causalged_simulation"]["size"] == "custom"
    density = sc_data.X.nnz / np.prod(sc_data.shape)
    assert 0.05 < density < 0.4  # atlas-like, much sparser than the named sizes
    unmeasured = st_data.obsm["unmeasured_counts"]
    assert unmeasured.shape == (st_data.n_obs, 240) and hasattr(unmeasured, "nnz")  # the truth stays sparse too
    np.testing.assert_allclose(st_data.obsm["cell_type_fractions"].sum(axis=1), 1.0)
    again_sc, again_st, again_requested = simulate(n_cells=900, n_spots=150, n_genes=300, panel_fraction=0.2, seed=3)
    assert (again_sc.X != sc_data.X).nnz == 0 and (again_st.X != st_data.X).nnz == 0 and again_requested == requested
    assert set(requested).isdisjoint(st_data.var_names)


def test_level_by_level_network_equals_the_gene_by_gene_one():
    """The chunked generator's vectorized DAG gives the named sizes' rates (noise set to zero,
    so both see the same draws), to float32 precision."""
    from causalged import simulate as simulate_module

    class Quiet:  # both generators' noise calls, returning zeros
        def normal(self, loc, scale, size):
            return np.zeros(size)

        def standard_normal(self, size, dtype):
            return np.zeros(size, dtype=dtype)

    rng = np.random.default_rng(1)
    source, target, weight = simulate_module._random_dag(400, rng)
    base, programs = rng.normal(-1, 1, 400), rng.normal(0, 1.5, (5, 400))
    types = rng.integers(0, 5, 70)
    expected = simulate_module._expression_rates(types, programs, base, source, target, weight, Quiet())
    network = simulate_module._Network(source, target, weight, 400)
    assert len(network.bounds) > 3  # a real multi-level DAG
    np.testing.assert_allclose(simulate_module._level_rates(types, programs, base, network, Quiet()), expected, rtol=2e-5, atol=1e-6)


def test_custom_size_chunks_pool_their_cells(monkeypatch):
    """Chunks of 40 cells (the chunk loop exercised for real): spots still pool their cells."""
    import causalged.simulate as simulate_module

    monkeypatch.setattr(simulate_module, "CHUNK_ENTRIES", 300 * 40)
    sc_data, st_data, _ = simulate(n_cells=500, n_spots=100, n_genes=300, seed=0)
    assert sc_data.n_obs == 500 and np.asarray(sc_data.X.sum(axis=1)).min() > 0
    totals = np.asarray(st_data.X.sum(axis=1)).ravel()
    assert np.corrcoef(totals, st_data.obs["n_cells"])[0, 1] > 0.3


def test_cli_size_options_and_their_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["simulate", "--outdir", str(tmp_path), "--name", "c", "--n-cells", "300", "--n-spots", "64",
                                 "--n-genes", "120", "--panel-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    import anndata as ad

    assert ad.read_h5ad(tmp_path / "c_sc.h5ad").shape == (300, 120) and ad.read_h5ad(tmp_path / "c_st.h5ad").shape == (64, 30)
    bad = runner.invoke(cli, ["simulate", "--outdir", str(tmp_path / "x"), "--panel-fraction", "1.5"])
    assert bad.exit_code == 2 and "--panel-fraction must be in (0, 1)" in bad.output
    spatial = runner.invoke(cli, ["simulate", "--outdir", str(tmp_path / "y"), "--n-cells", "300", "--grn", "spatial"])
    assert spatial.exit_code == 2 and "named sizes only" in spatial.output


def test_custom_size_reference_is_written_in_row_blocks_and_sparsity_follows_base_mean(tmp_path, monkeypatch):
    """write_demo streams the reference a chunk of cells at a time (5 chunks here) into the same
    matrix simulate() returns in memory; a lower --base-mean gives a sparser pair."""
    import anndata as ad

    import causalged.simulate as simulate_module
    from causalged.simulate import write_demo

    monkeypatch.setattr(simulate_module, "CHUNK_ENTRIES", 300 * 100)
    paths = write_demo(tmp_path, name="b", n_cells=500, n_spots=100, n_genes=300, seed=1)
    in_memory, _, _ = simulate(n_cells=500, n_spots=100, n_genes=300, seed=1)
    written = ad.read_h5ad(paths["sc"])
    assert written.shape == (500, 300) and (written.X != in_memory.X).nnz == 0
    assert list(written.obs_names) == list(in_memory.obs_names) and "causalged_simulation" in written.uns
    sparse, _, _ = simulate(n_cells=500, n_spots=100, n_genes=300, seed=1, base_mean=-4.5)
    density = written.X.nnz / np.prod(written.shape)
    assert sparse.X.nnz / np.prod(sparse.shape) < 0.6 * density
