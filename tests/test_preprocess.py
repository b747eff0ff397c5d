"""QC, normalization, HVG selection and gene splits on hand-made and simulated data."""

from __future__ import annotations

import json
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from causalged import preprocess
from causalged.errors import InputError
from causalged.io import read_h5ad


def make_pair(sc_counts, st_counts, sc_genes, st_genes):
    sc_data = ad.AnnData(X=np.asarray(sc_counts, dtype=np.float32), var=pd.DataFrame(index=sc_genes))
    sc_data.obs_names = [f"c{i}" for i in range(sc_data.n_obs)]
    st_data = ad.AnnData(X=np.asarray(st_counts, dtype=np.float32), var=pd.DataFrame(index=st_genes))
    st_data.obs_names = [f"s{i}" for i in range(st_data.n_obs)]
    st_data.obsm["spatial"] = np.arange(st_data.n_obs * 2, dtype=float).reshape(-1, 2)
    return sc_data, st_data


def test_qc_thresholds_filter_cells_spots_and_genes():
    # 4 cells x 4 genes: detected genes per cell 4, 1, 2, 3; gene D detected nowhere in sc.
    sc_counts = [[1, 2, 3, 0], [5, 0, 0, 0], [1, 1, 0, 0], [2, 2, 2, 0]]
    st_counts = [[0, 0, 0], [1, 0, 0], [3, 4, 0], [0, 0, 0]]
    sc_data, st_data = make_pair(sc_counts, st_counts, list("ABCD"), list("ABC"))
    sc_qc, st_qc, summary = preprocess.qc(sc_data, st_data, min_genes_cell=2, min_genes_spot=1, scale_min_genes=False)
    assert list(sc_qc.obs_names) == ["c0", "c2", "c3"]
    assert list(sc_qc.var_names) == ["A", "B", "C"]  # D detected in no kept cell
    assert list(st_qc.obs_names) == ["s1", "s2"]  # spots with 0 genes dropped
    assert list(st_qc.var_names) == ["A", "B"]  # C detected in no spot
    assert summary["sc"]["n_obs_before"] == 4 and summary["sc"]["n_obs_after"] == 3
    assert summary["st"]["n_genes_after"] == 2
    assert summary["sc"]["median_counts_after"] == pytest.approx(np.median([6, 2, 6]))
    assert sc_qc.uns["causalged"]["qc"]["min_genes_cell_used"] == 2


def test_qc_scales_cell_threshold_for_small_references(caplog):
    assert preprocess.effective_min_genes(500, 20_000) == 500
    assert preprocess.effective_min_genes(500, 33) == 1
    assert preprocess.effective_min_genes(500, 384) == 10
    assert preprocess.effective_min_genes(500, 2000) == 50
    rng = np.random.default_rng(0)
    sc_data, st_data = make_pair(rng.poisson(2, (20, 40)), rng.poisson(2, (10, 20)), [f"g{i}" for i in range(40)], [f"g{i}" for i in range(20)])
    with caplog.at_level("WARNING"):
        sc_qc, _, summary = preprocess.qc(sc_data, st_data)
    assert summary["min_genes_cell_used"] == 1 and summary["min_genes_cell_requested"] == 500
    assert sc_qc.n_obs == 20
    assert "whole transcriptome" in caplog.text


def test_qc_removing_every_cell_is_a_clear_error():
    sc_data, st_data = make_pair([[1, 0], [0, 1]], [[1, 1]], ["A", "B"], ["A", "B"])
    with pytest.raises(InputError, match="QC removed every one of the 2 cells.*lower --min-genes-cell"):
        preprocess.qc(sc_data, st_data, min_genes_cell=5, scale_min_genes=False, sc_path="sc.h5ad")


def test_no_shared_genes_is_a_clear_error_and_case_insensitive_matching_fixes_it():
    sc_data, st_data = make_pair([[1, 2]], [[3, 4]], ["Gad1", "Sst"], ["GAD1", "SST"])
    with pytest.raises(InputError, match="no gene of the ST panel.*--case-insensitive"):
        preprocess.match_genes(sc_data, st_data, st_path="st.h5ad")
    shared = preprocess.match_genes(sc_data, st_data, case_insensitive=True)
    assert shared == ["Gad1", "Sst"]
    assert list(st_data.var_names) == ["Gad1", "Sst"]


def test_normalize_equals_equation_4_and_keeps_counts():
    counts = np.array([[1, 3, 0], [2, 2, 4], [0, 0, 5]], dtype=np.float32)
    data = ad.AnnData(X=sp.csr_matrix(counts))
    out = preprocess.normalize(data)
    totals = counts.sum(axis=1, keepdims=True)
    expected = np.log1p(counts / totals * np.median(totals))
    np.testing.assert_allclose(out.X.toarray(), expected, rtol=1e-6)
    np.testing.assert_array_equal(out.layers["counts"].toarray(), counts)
    np.testing.assert_allclose(preprocess.normalize_counts(counts), expected, rtol=1e-6)
    assert data.X.toarray().max() == 5  # input untouched


def test_normalize_refuses_normalized_input_unless_told():
    data = ad.AnnData(X=np.array([[0.5, 1.2], [2.0, 0.1]], dtype=np.float32))
    with pytest.raises(InputError, match="non-integer values.*--already-normalized"):
        preprocess.normalize(data, path="x.h5ad")
    out = preprocess.normalize(data, already_normalized=True)
    np.testing.assert_allclose(out.X, data.X)
    assert out.uns["causalged"]["normalize"]["already_normalized"] is True


def test_hvg_keeps_top_fraction_plus_panel_plus_requested():
    rng = np.random.default_rng(1)
    n_genes = 40
    genes = [f"g{i}" for i in range(n_genes)]
    counts = rng.poisson(rng.uniform(0.5, 5, n_genes), (200, n_genes)).astype(np.float32)
    sc_data = preprocess.normalize(ad.AnnData(X=counts, var=pd.DataFrame(index=genes)))
    panel = genes[:10]
    st_data = ad.AnnData(X=np.ones((5, 10), dtype=np.float32), var=pd.DataFrame(index=panel))
    sc_out, st_out, summary = preprocess.select_hvg(sc_data, st_data, top_fraction=0.25, requested_genes=["g39", "notagene"])
    top = set(sc_data.var_names[_top_variable(sc_data, math.ceil(0.25 * n_genes))])
    expected = top | set(panel) | {"g39"}
    assert summary["n_highly_variable"] == 10
    assert set(sc_out.var_names) == expected
    assert summary["n_kept"] == len(expected)
    assert list(st_out.var_names) == panel
    assert set(sc_out.var_names[sc_out.var["causalged_shared"]]) == set(panel)
    assert set(sc_out.var_names[sc_out.var["causalged_target"]]) == expected - set(panel)
    assert summary["requested_missing"] == ["notagene"]


def _top_variable(data, n_top):
    import scanpy as sc

    tmp = data.copy()
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top, flavor="seurat")
    return tmp.var["highly_variable"].to_numpy()


@pytest.mark.parametrize("n_genes,n_folds", [(33, 10), (7, 10), (134, 5)])
def test_gene_splits_are_disjoint_cover_and_seeded(n_genes, n_folds):
    genes = [f"g{i}" for i in range(n_genes)]
    split = preprocess.make_gene_splits(genes, seed=3, n_folds=n_folds)
    parts = split["train"] + split["val"] + split["test"]
    assert sorted(parts) == sorted(genes)
    assert len(split["test"]) == max(1, round(0.1 * n_genes))
    assert len(split["val"]) == max(1, round(0.2 * n_genes))
    assert split["n_folds"] == min(n_folds, n_genes) == len(split["folds"])
    flat = [g for fold in split["folds"] for g in fold]
    assert sorted(flat) == sorted(genes) and len(flat) == len(set(flat))
    assert split == preprocess.make_gene_splits(genes, seed=3, n_folds=n_folds)
    assert split["folds"] != preprocess.make_gene_splits(genes, seed=4, n_folds=n_folds)["folds"]


def test_preprocessed_tiny_files(tiny_preprocessed):
    sc_data = ad.read_h5ad(tiny_preprocessed["sc"])
    st_data = ad.read_h5ad(tiny_preprocessed["st"])
    split = json.loads(tiny_preprocessed["split"].read_text())
    assert list(st_data.var_names) == split["shared_genes"]
    assert set(split["target_genes"]) == set(sc_data.var_names[sc_data.var["causalged_target"].to_numpy()])
    assert {"counts"} <= set(st_data.layers) and "spatial" in st_data.obsm
    assert set(st_data.uns["causalged"]) == {"qc", "normalize", "hvg"}
    assert split["n_folds"] == 5


def test_read_h5ad_takes_coordinates_from_obs_columns(tmp_path):
    data = ad.AnnData(X=np.ones((3, 2), dtype=np.float32), obs=pd.DataFrame({"x_coord": [0.0, 1, 2], "y_coord": [5.0, 6, 7]}, index=list("abc")))
    data.write_h5ad(tmp_path / "st.h5ad")
    out = read_h5ad(tmp_path / "st.h5ad", role="st")
    np.testing.assert_array_equal(out.obsm["spatial"], [[0, 5], [1, 6], [2, 7]])


def test_qc_normalize_and_hvg_leave_their_inputs_untouched():
    """The steps no longer copy the whole input before working (memory at atlas size), so check
    that what they are given comes back exactly as it was: matrix, layers, obs and var."""
    from causalged.simulate import simulate

    sc_raw, st_raw, _ = simulate(size="tiny", seed=0)

    def snapshot(data):
        return (data.X.copy(), {k: v.copy() for k, v in data.layers.items()}, data.obs.copy(), data.var.copy())

    def assert_same(data, before):
        x, layers, obs, var = before
        dense = lambda m: m.toarray() if sp.issparse(m) else np.asarray(m)  # noqa: E731
        np.testing.assert_array_equal(dense(data.X), dense(x))
        assert set(data.layers) == set(layers) and all(np.array_equal(dense(data.layers[k]), dense(v)) for k, v in layers.items())
        pd.testing.assert_frame_equal(data.obs, obs)
        pd.testing.assert_frame_equal(data.var, var)

    raw = [snapshot(d) for d in (sc_raw, st_raw)]
    sc_qc, st_qc, _ = preprocess.qc(sc_raw, st_raw)
    assert "n_genes" in sc_qc.obs and (sc_qc.obs["n_genes"] > 0).all()
    [assert_same(d, s) for d, s in zip((sc_raw, st_raw), raw)]
    qc_state = [snapshot(d) for d in (sc_qc, st_qc)]
    sc_norm, st_norm = preprocess.normalize(sc_qc), preprocess.normalize(st_qc)
    [assert_same(d, s) for d, s in zip((sc_qc, st_qc), qc_state)]
    np.testing.assert_array_equal(sc_norm.layers["counts"].toarray(), sc_qc.X.toarray())  # counts kept as given
    norm_state = [snapshot(d) for d in (sc_norm, st_norm)]
    sc_hvg, _, _ = preprocess.select_hvg(sc_norm, st_norm)
    [assert_same(d, s) for d, s in zip((sc_norm, st_norm), norm_state)]
    assert "highly_variable" in sc_hvg.var and "highly_variable" not in sc_norm.var
