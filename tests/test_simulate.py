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
