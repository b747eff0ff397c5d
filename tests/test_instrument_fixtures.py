"""The instrument folders of tests/fixtures/instrument_folders.py read back with the tools people use on them.

Spatial layouts are read with spatialdata_io, table only (no images, transcripts, boundaries or labels);
reference layouts with scanpy/anndata.  Every case checks that the counts come back equal to the tiny
input's (rows mapped through the vendor ids, control features set aside) and where the coordinates land.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fixtures.instrument_folders import (
    LAYOUTS,
    SC_LAYOUTS,
    ST_LAYOUTS,
    TARGET_NAMES,
    gene_ids,
    load_tiny,
    main,
    vendor_ids,
)

# warnings the readers raise on a table-only read of these folders (all expected, none actionable here)
KNOWN_READER_WARNINGS = [
    r"No full resolution image found",  # visium_hd: no microscope image on purpose
    r"No image path found containing the (hires|lowres) image",  # visium_hd: no PNGs on purpose
    r"The table is annotating '.*', which is not present in the SpatialData object",  # xenium/merscope/cosmx
    r"Converting `region_key: region` to categorical dtype",  # visium: the reader's own obs column
]
KNOWN_READER_FUTURE_WARNINGS = [
    r"The dtype argument is deprecated",  # merscope/cosmx pass dtype= to AnnData()
]


def _dense(x) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        x = x.to_numpy()
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


@pytest.fixture(scope="module")
def tiny():
    st, sc = load_tiny()
    return {"st": st, "sc": sc}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("instrument_folders")
    assert main([str(out)]) == 0  # the __main__ entry point writes every layout
    return {p: out / TARGET_NAMES[p] for p in LAYOUTS}


def _read(fn):
    with warnings.catch_warnings():
        for pat in KNOWN_READER_WARNINGS:
            warnings.filterwarnings("ignore", message=pat, category=UserWarning)
        for pat in KNOWN_READER_FUTURE_WARNINGS:
            warnings.filterwarnings("ignore", message=pat, category=FutureWarning)
        return fn()


def _assert_same_counts(table, ref, ids, genes=None):
    """table (reader output) holds ref's counts: rows by vendor id (ids[i] is ref row i), columns by gene."""
    genes = list(ref.var_names) if genes is None else genes
    assert sorted(table.obs_names) == sorted(ids)
    assert list(table.var_names) == list(genes)
    got = _dense(table[list(ids), :].X)
    np.testing.assert_array_equal(got, _dense(ref.X))


# --------------------------------------------------------------------------- spatial layouts


def _read_visium(path):
    from spatialdata_io import visium

    return visium(path, dataset_id="tiny")


def _read_visium_hd(path):
    from spatialdata_io import visium_hd

    return visium_hd(
        path,
        dataset_id="tiny",
        bin_size=8,
        load_segmentations_only=False,
        load_all_images=False,
        annotate_table_by_labels=False,
    )


XENIUM_TABLE_ONLY = dict(
    cells_table=True,
    cells_boundaries=False,
    nucleus_boundaries=False,
    cells_as_circles=False,
    cells_labels=False,
    nucleus_labels=False,
    transcripts=False,
    morphology_mip=False,
    morphology_focus=False,
    aligned_images=False,
)


def _read_xenium(path, **kw):
    from spatialdata_io import xenium

    return xenium(path, **XENIUM_TABLE_ONLY, **kw)


def _read_merscope(path):
    from spatialdata_io import merscope

    return merscope(path, transcripts=False, cells_boundaries=False, mosaic_images=False, cells_table=True)


def _read_cosmx(path):
    from spatialdata_io import cosmx

    return cosmx(path, dataset_id="tiny", transcripts=False)


def _read_spatialdata(path):
    import spatialdata

    return spatialdata.read_zarr(path)


def check_visium(platform, path, tiny):
    st = tiny["st"]
    sdata = _read(lambda: _read_visium(path))
    table = sdata["table"]
    ids = vendor_ids(platform, st)
    _assert_same_counts(table, st, ids)
    assert list(table.var["gene_ids"]) == gene_ids(st.var_names)
    # full-resolution pixels == the input's coordinates, (x, y) = (pxl_col, pxl_row)
    np.testing.assert_allclose(table[ids].obsm["spatial"], st.obsm["spatial"])
    attrs = table.uns["spatialdata_attrs"]
    assert attrs == {"region": "tiny", "region_key": "region", "instance_key": "spot_id"}
    circles = sdata["tiny"]
    xy = np.c_[circles.geometry.x, circles.geometry.y]
    np.testing.assert_allclose(xy[table[ids].obs["spot_id"].to_numpy()], st.obsm["spatial"])


def check_visium_hd(platform, path, tiny):
    import json

    st = tiny["st"]
    sdata = _read(lambda: _read_visium_hd(path))
    assert list(sdata.tables) == ["square_008um"]
    table = sdata["square_008um"]
    ids = vendor_ids("visium_hd", st)
    _assert_same_counts(table, st, ids)
    np.testing.assert_allclose(table[ids].obsm["spatial"], st.obsm["spatial"])
    assert table.uns["spatialdata_attrs"]["region"] == "tiny_square_008um"
    assert table.uns["spatialdata_attrs"]["instance_key"] == "location_id"
    sf = json.loads(
        (path / "binned_outputs/square_008um/spatial/scalefactors_json.json").read_text()
    )
    assert sf["bin_size_um"] == 8.0
    assert np.isclose(sf["microns_per_pixel"] * sf["spot_diameter_fullres"], 8.0)


def check_xenium(platform, path, tiny):
    st = tiny["st"]
    sdata = _read(lambda: _read_xenium(path))
    table = sdata["table"]
    ids = vendor_ids("xenium", st)
    _assert_same_counts(table, st, ids)  # gex_only=True (default) drops the control features
    np.testing.assert_allclose(table[ids].obsm["spatial"], st.obsm["spatial"])  # microns
    assert list(table[ids].obs["cell_id"]) == ids
    assert table.uns["spatialdata_attrs"] == {"region": "cell_labels", "region_key": "region", "instance_key": "cell_id"}

    full = _read(lambda: _read_xenium(path, gex_only=False))["table"]
    types = full.var["feature_types"]
    assert (types == "Negative Control Probe").sum() == 2
    assert list(full.var_names[types == "Negative Control Probe"]) == ["NegControlProbe_00001", "NegControlProbe_00002"]
    assert (types == "Negative Control Codeword").sum() == 1
    gex = full[:, types == "Gene Expression"]
    _assert_same_counts(gex, st, ids)


def check_merscope(platform, path, tiny):
    st = tiny["st"]
    sdata = _read(lambda: _read_merscope(path))
    table = sdata["table"]
    ids = vendor_ids("merscope", st)
    _assert_same_counts(table, st, ids)
    np.testing.assert_allclose(table[ids].obsm["spatial"], st.obsm["spatial"])  # microns
    assert list(table.obsm["blank"].columns) == ["Blank-0", "Blank-1"]
    assert list(table[ids].obs["EntityID"]) == ids
    assert table.uns["spatialdata_attrs"]["instance_key"] == "EntityID"
    tf = np.loadtxt(path / "images" / "micron_to_mosaic_pixel_transform.csv")
    assert tf.shape == (3, 3) and np.isclose(tf[0, 0], 1 / 0.108)


def check_cosmx(platform, path, tiny):
    st = tiny["st"]
    sdata = _read(lambda: _read_cosmx(path))
    table = sdata["table"]
    ids = vendor_ids("cosmx", st)
    controls = ["NegPrb1", "NegPrb2", "SystemControl1"]
    assert list(table.var_names[-3:]) == controls  # the reader keeps control columns in X
    _assert_same_counts(table[:, list(st.var_names)], st, ids)  # cell_ID 0 (unassigned) rows are dropped
    t = table[ids]
    np.testing.assert_allclose(t.obsm["global"], st.obsm["spatial"])  # CenterX/Y_global_px
    fov_pos = pd.read_csv(path / "tiny_fov_positions_file.csv", index_col="fov")
    corner = fov_pos.loc[t.obs["fov"].astype(int), ["x_global_px", "y_global_px"]].to_numpy()
    np.testing.assert_allclose(t.obsm["spatial"], st.obsm["spatial"] - corner)  # CenterX/Y_local_px
    assert set(t.obs["fov"].astype(str)) == {"1", "2"}


def check_spatialdata(platform, path, tiny):
    st = tiny["st"]
    sdata = _read(lambda: _read_spatialdata(path))
    table = sdata["table"]
    ids = vendor_ids("spatialdata", st)
    _assert_same_counts(table, st, ids)
    assert table.uns["spatialdata_attrs"] == {"region": "spots", "region_key": "region", "instance_key": "spot_id"}
    assert list(table.obs["spot_id"]) == ids
    shapes = sdata["spots"]
    xy = np.c_[shapes.geometry.x, shapes.geometry.y]
    np.testing.assert_allclose(xy[shapes.index.get_indexer(ids)], st.obsm["spatial"])
    np.testing.assert_allclose(table[ids].obsm["spatial"], st.obsm["spatial"])


# --------------------------------------------------------------------------- reference formats


def check_10x_h5(platform, path, tiny):
    import scanpy

    sc = tiny["sc"]
    a = scanpy.read_10x_h5(path)
    _assert_same_counts(a, sc, vendor_ids("10x_h5", sc))
    assert list(a.var["gene_ids"]) == gene_ids(sc.var_names)


def check_10x_mtx(platform, path, tiny):
    import scanpy

    sc = tiny["sc"]
    a = scanpy.read_10x_mtx(path)
    _assert_same_counts(a, sc, vendor_ids("10x_mtx", sc))
    assert list(a.var["gene_ids"]) == gene_ids(sc.var_names)


def check_loom(platform, path, tiny):
    import anndata

    sc = tiny["sc"]
    a = anndata.io.read_loom(path)
    _assert_same_counts(a, sc, vendor_ids("loom", sc))
    assert list(a.var["Accession"]) == gene_ids(sc.var_names)
    assert list(a.obs["cell_type"]) == list(sc.obs["cell_type"].astype(str))


def check_cellxgene(platform, path, tiny):
    import anndata
    import scanpy

    sc = tiny["sc"]
    a = anndata.read_h5ad(path)
    ids = gene_ids(sc.var_names)
    assert list(a.var_names) == ids
    assert list(a.var["feature_name"].astype(str)) == list(sc.var_names)
    raw = a.raw.to_adata()
    assert list(raw.var_names) == ids and list(raw.var["feature_name"].astype(str)) == list(sc.var_names)
    np.testing.assert_array_equal(_dense(raw.X), _dense(sc.X))
    expect = sc.copy()
    scanpy.pp.normalize_total(expect, target_sum=1e4)
    scanpy.pp.log1p(expect)
    np.testing.assert_allclose(_dense(a.X), _dense(expect.X), rtol=1e-5, atol=1e-6)


CHECKS = {
    "visium": check_visium,
    "visium_v1": check_visium,
    "visium_hd": check_visium_hd,
    "xenium": check_xenium,
    "merscope": check_merscope,
    "cosmx": check_cosmx,
    "spatialdata": check_spatialdata,
    "10x_h5": check_10x_h5,
    "10x_mtx": check_10x_mtx,
    "loom": check_loom,
    "cellxgene": check_cellxgene,
}


@pytest.mark.parametrize("platform", list(LAYOUTS))
def test_layout_reads_back(platform, folders, tiny):
    CHECKS[platform](platform, folders[platform], tiny)


def test_every_layout_is_checked_and_described():
    assert set(CHECKS) == set(LAYOUTS) == set(ST_LAYOUTS) | set(SC_LAYOUTS)
    assert all(callable(w) and isinstance(desc, str) and desc for w, desc in LAYOUTS.values())
