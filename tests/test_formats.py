"""Data as people have it: every input layout read into the internal pair, through `causalged run`,
equal to the .h5ad route of the same data; SpatialData out; one clear line for each bad input.

The folders are written by tests/fixtures/instrument_folders.py from the committed tiny pair,
after each vendor's documented layout (table and positions only: no images, transcripts or masks).
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from click.testing import CliRunner

from causalged import formats
from causalged.cli import cli
from causalged.errors import InputError
from fixtures.instrument_folders import SC_LAYOUTS, ST_LAYOUTS, load_tiny, vendor_ids, write_layout

RUN_OPTIONS = ["--n-folds", "3", "--eval-methods", "knn,mean_map", "--n-samples", "3"]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("layouts")
    st, sc = load_tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {p: write_layout(p, out, st, sc) for p in [*ST_LAYOUTS, *SC_LAYOUTS]}


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


@pytest.mark.parametrize("layout", list(ST_LAYOUTS))
def test_each_spatial_layout_reads_as_the_h5ad(layouts, layout):
    st, _ = load_tiny()
    data, info = formats.read_spatial(layouts[layout])
    assert info["layout"] == layout.removesuffix("_v1") and info["files"] and "spatialdata" in info["reader"]
    rows = data[vendor_ids(layout, st), list(st.var_names)]
    assert data.n_vars == st.n_vars  # control probes and blank codewords are not genes
    np.testing.assert_array_equal(_dense(rows.X), _dense(st.X))
    np.testing.assert_allclose(rows.obsm["spatial"], st.obsm["spatial"])  # the slide's global positions (CosMx: not per-FOV)


@pytest.mark.parametrize("layout", list(SC_LAYOUTS))
def test_each_reference_layout_reads_its_raw_counts(layouts, layout):
    st, sc = load_tiny()
    data, info = formats.read_reference(layouts[layout])
    record = formats.match_gene_ids(data, st)
    assert record["shared_genes"] == st.n_vars and not record["panel_genes_not_in_reference"]
    rows = data[vendor_ids(layout, sc), list(sc.var_names)]  # genes by symbol, whatever the file's index
    np.testing.assert_array_equal(_dense(rows.X), _dense(sc.X))
    if layout == "cellxgene":
        assert info["counts_from"] == ".raw.X" and record["matched_by"] == 'var["feature_name"]'
        assert data.var["gene_ids"].str.startswith("ENSMUSG").all()


def _h5ad_route(st: ad.AnnData, folder: Path, repo: Path) -> ad.AnnData:
    folder.mkdir(parents=True, exist_ok=True)
    st.write_h5ad(folder / "st.h5ad")
    sheet = folder / "sheet.csv"
    sheet.write_text(f"sample,sc,st\ns,{repo}/tests/data/tiny_sc.h5ad,{folder / 'st.h5ad'}\n")
    result = CliRunner().invoke(cli, ["run", "--input", str(sheet), "--outdir", str(folder / "run"), *RUN_OPTIONS])
    assert result.exit_code == 0, result.output
    return ad.read_h5ad(folder / "run" / "s" / "impute" / "s.imputed.h5ad")


@pytest.fixture(scope="module")
def h5ad_route(tmp_path_factory, repo):
    st, _ = load_tiny()
    return _h5ad_route(st, tmp_path_factory.mktemp("h5ad_route"), repo)


@pytest.mark.parametrize("st_layout, sc_layout", [(layout, "cellxgene" if layout == "xenium" else None) for layout in ST_LAYOUTS]
                         + [("spatialdata", "10x_h5"), ("spatialdata", "10x_mtx"), ("spatialdata", "loom")])
def test_causalged_run_on_each_layout_predicts_what_the_h5ad_route_does(layouts, h5ad_route, st_layout, sc_layout, tmp_path, repo):
    st, _ = load_tiny()
    sc_path = layouts[sc_layout] if sc_layout else repo / "tests/data/tiny_sc.h5ad"
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,sc,st,platform\ns,{sc_path},{layouts[st_layout]},{st_layout}\n")
    result = CliRunner().invoke(cli, ["run", "--input", str(sheet), "--outdir", str(tmp_path / "run"), *RUN_OPTIONS])
    assert result.exit_code == 0, result.output
    imputed = ad.read_h5ad(tmp_path / "run" / "s" / "impute" / "s.imputed.h5ad")
    order = [vendor_ids(st_layout, st).index(name) for name in imputed.obs_names]
    if order != sorted(order):  # the layout lists spots in another order (CosMx: by FOV): the h5ad route of the same rows, same order
        h5ad_route = _h5ad_route(st[order].copy(), tmp_path / "h5ad_same_order", repo)
        h5ad_route.obs_names = imputed.obs_names
    rows = imputed[[n for n in (vendor_ids(st_layout, st) if order == sorted(order) else imputed.obs_names)], list(h5ad_route.var_names)]
    assert imputed.n_vars == h5ad_route.n_vars > 0
    np.testing.assert_allclose(rows.X, h5ad_route.X, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows.var["expected_pcc"], h5ad_route.var["expected_pcc"], rtol=1e-5, atol=1e-6)
    record = ad.read_h5ad(tmp_path / "run" / "s" / "import" / "s.st.h5ad").uns["causalged"]["import"]
    assert record["st"]["layout"] == st_layout.removesuffix("_v1") and len(record["st"]["files"]) > 0


def test_spatialdata_result_holds_every_imputed_gene_with_the_inputs_ids(layouts, tmp_path):
    import spatialdata

    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,sc,st\ns,{layouts['cellxgene']},{layouts['xenium']}\n")
    result = CliRunner().invoke(cli, ["run", "--input", str(sheet), "--outdir", str(tmp_path / "run"), *RUN_OPTIONS])
    assert result.exit_code == 0, result.output
    h5ad = ad.read_h5ad(tmp_path / "run" / "s" / "impute" / "s.imputed.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = spatialdata.read_zarr(tmp_path / "run" / "s" / "impute" / "s.imputed.zarr")
    table = sdata.tables["imputed"]
    assert list(table.var_names) == list(h5ad.var_names) and {"expected_pcc", "trust"} <= set(table.var.columns)
    np.testing.assert_allclose(table.X, h5ad.X)
    np.testing.assert_allclose(table.layers["std"], h5ad.layers["std"])
    attrs = table.uns["spatialdata_attrs"]
    assert attrs["region"] == "cell_labels" and attrs["instance_key"] == "cell_id"  # as the Xenium table annotates its cells
    st, _ = load_tiny()
    assert set(table.obs["cell_id"]) == set(vendor_ids("xenium", st))


# ----------------------------------------------------------------------------- bad input: one line, nothing written


def _run_fails(tmp_path, sc, st, match: str):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,sc,st\ns,{sc},{st}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--input", str(sheet), "--outdir", str(out), *RUN_OPTIONS])
    assert result.exit_code == 2, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and match in message, message
    assert not (out / "s").exists() and not (out / "pipeline_info" / "params.json").exists()  # checked before any work
    return message


def test_a_folder_missing_a_required_file_names_it(layouts, tmp_path, repo):
    folder = tmp_path / "xenium"
    shutil.copytree(layouts["xenium"], folder)
    (folder / "cells.parquet").unlink()
    _run_fails(tmp_path, repo / "tests/data/tiny_sc.h5ad", folder, "this xenium folder has no cells.parquet")


def test_an_unknown_folder_layout_lists_the_known_ones(tmp_path, repo):
    folder = tmp_path / "outs"
    folder.mkdir()
    (folder / "matrix.csv").write_text("a,b\n1,2\n")
    message = _run_fails(tmp_path, repo / "tests/data/tiny_sc.h5ad", folder, "no layout the pipeline knows")
    assert "xenium" in message and "visium" in message and "merscope" in message and "cosmx" in message


def test_a_reference_without_counts_says_where_it_looked(layouts, tmp_path, repo):
    data = ad.read_h5ad(layouts["cellxgene"])
    del data.raw  # normalized values only
    data.write_h5ad(tmp_path / "normalized.h5ad")
    _run_fails(tmp_path, tmp_path / "normalized.h5ad", repo / "tests/data/tiny_st.h5ad", "no raw integer counts found (looked in X: the values are normalized")


def test_no_gene_in_common_shows_both_id_styles(layouts, tmp_path, repo):
    data = ad.read_h5ad(layouts["cellxgene"])
    data.var = data.var.drop(columns=["feature_name"])
    data.raw = None
    data.X = data.X.expm1() if hasattr(data.X, "expm1") else np.expm1(data.X)
    counts = ad.read_h5ad(repo / "tests/data/tiny_sc.h5ad")
    ad.AnnData(X=counts.X, obs=counts.obs, var=data.var).write_h5ad(tmp_path / "ensembl.h5ad")
    message = _run_fails(tmp_path, tmp_path / "ensembl.h5ad", repo / "tests/data/tiny_st.h5ad", "no gene in common")
    assert "ENSMUSG" in message and "Gene00" in message and "--gene-symbols" in message


def test_normalized_spatial_counts_are_refused_unless_said_so(layouts, tmp_path):
    data = ad.read_h5ad(layouts["cellxgene"])  # X normalized: as an ST input it is not counts
    data.obsm["spatial"] = np.random.default_rng(0).random((data.n_obs, 2))
    data.var_names = data.var["feature_name"].astype(str).to_numpy()
    data.var = data.var[[]]
    data.raw = None
    data.write_h5ad(tmp_path / "st_normalized.h5ad")
    _run_fails(tmp_path, layouts["10x_h5"], tmp_path / "st_normalized.h5ad", "non-integer values")


def test_visium_hd_bin_size_must_exist(layouts):
    with pytest.raises(InputError, match="has no binned_outputs/square_016um"):
        formats.read_spatial(layouts["visium_hd"], bin_size=16)


def test_unknown_reference_file_type(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("x\n")
    with pytest.raises(InputError, match=r"a \.csv file is not a reference format"):
        formats.reference_layout(path)
    assert os.listdir(tmp_path) == ["counts.csv"]


def test_a_platform_that_contradicts_the_files_is_refused(layouts, tmp_path, repo):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,sc,st,platform\ns,{repo}/tests/data/tiny_sc.h5ad,{layouts['xenium']},Visium\n")
    result = CliRunner().invoke(cli, ["run", "--input", str(sheet), "--outdir", str(tmp_path / "out"), *RUN_OPTIONS])
    assert result.exit_code == 2 and "the samplesheet says platform Visium, but the files are a xenium layout" in result.output
    assert not (tmp_path / "out" / "s").exists()
    formats.confirm_platform(layouts["xenium"], "xenium", "MERFISH")  # a platform that names no layout is a label only


def test_the_zarr_is_skipped_above_its_memory_limit(h5ad_route, tmp_path, monkeypatch):
    h5ad = tmp_path / "imputed.h5ad"
    h5ad_route.write_h5ad(h5ad)
    monkeypatch.setattr(formats, "ZARR_MAX_BYTES", 2 * 4 * h5ad_route.n_obs * h5ad_route.n_vars - 1)
    assert formats.write_spatialdata(h5ad, tmp_path / "x.zarr") is None and not (tmp_path / "x.zarr").exists()
    monkeypatch.setattr(formats, "ZARR_MAX_BYTES", 2 * 4 * h5ad_route.n_obs * h5ad_route.n_vars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert formats.write_spatialdata(h5ad, tmp_path / "x.zarr") == tmp_path / "x.zarr"
