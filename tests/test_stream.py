"""Large references block by block: qc, normalize and hvg on a reference on disk give the files
the in-memory route gives, and read it a block at a time."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

import causalged.stream as stream
from causalged.steps import hvg, normalize, qc
from causalged.errors import InputError
from causalged.io import to_jsonable
from causalged.simulate import write_demo


def _preprocess(data: dict, outdir, monkeypatch, *, limit: str | None) -> dict:
    if limit is None:
        monkeypatch.delenv(stream.STREAM_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(stream.STREAM_VARIABLE, limit)
    qc_out = qc.run(sample="s", sc=data["sc"], st=data["st"], outdir=outdir / "qc", min_genes_cell=55, min_cells_gene=25, scale_min_genes=False)
    norm = normalize.run(sample="s", sc=qc_out["sc"], st=qc_out["st"], outdir=outdir / "normalize")
    hvg_out = hvg.run(sample="s", sc=norm["sc"], st=norm["st"], outdir=outdir / "hvg", genes=data["genes"])
    return {"qc": qc_out, "normalize": norm, "hvg": hvg_out}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("pair"), name="s", n_cells=600, n_spots=80, n_genes=300, panel_fraction=0.3, seed=4)


def test_streamed_preprocessing_gives_the_in_memory_files(pair, tmp_path, monkeypatch):
    in_memory = _preprocess(pair, tmp_path / "memory", monkeypatch, limit=None)
    read = []
    original = stream.BackedReference.blocks

    def counted(self, *args, **kwargs):
        for rows, block in original(self, *args, **kwargs):
            read.append(rows.stop - rows.start)
            yield rows, block

    monkeypatch.setattr(stream, "BLOCK_ENTRIES", 2_000)  # about 20 cells per block
    monkeypatch.setattr(stream.BackedReference, "blocks", counted)
    streamed = _preprocess(pair, tmp_path / "streamed", monkeypatch, limit="1")
    assert read and max(read) < 100  # it really went block by block
    for step in ("qc", "normalize", "hvg"):
        a, b = ad.read_h5ad(in_memory[step]["sc"]), ad.read_h5ad(streamed[step]["sc"])
        assert a.shape == b.shape and a.shape[0] > 100 and list(a.obs_names) == list(b.obs_names)
        assert list(a.var_names) == list(b.var_names)
        np.testing.assert_allclose(a.X.toarray(), b.X.toarray(), rtol=1e-5, atol=1e-6)
        assert set(a.layers) == set(b.layers)
        for key in a.layers:
            np.testing.assert_array_equal(a.layers[key].toarray(), b.layers[key].toarray())
        recorded = [to_jsonable(dict(x.uns["causalged"][step])) for x in (a, b)]
        if step == "normalize":
            assert recorded[0].pop("target_sum") == pytest.approx(recorded[1].pop("target_sum"), rel=1e-6)
        assert recorded[0] == recorded[1]
        for column in a.var.columns:
            assert list(a.var[column]) == pytest.approx(list(b.var[column]), nan_ok=True), column
    qc_summary = ad.read_h5ad(in_memory["qc"]["sc"]).uns["causalged"]["qc"]["sc"]
    assert qc_summary["n_genes_after"] < qc_summary["n_genes_before"] and qc_summary["n_obs_after"] < qc_summary["n_obs_before"]
    memory_qc = (tmp_path / "memory" / "qc" / "s.qc.json").read_text()
    assert memory_qc == (tmp_path / "streamed" / "qc" / "s.qc.json").read_text()
    assert (tmp_path / "memory" / "hvg" / "s.split.json").read_text() == (tmp_path / "streamed" / "hvg" / "s.split.json").read_text()


def test_variability_from_a_sample_above_the_cell_limit(pair, tmp_path, monkeypatch):
    import causalged.preprocess as preprocess

    monkeypatch.setattr(preprocess, "VARIABILITY_CELLS", 300)
    out = _preprocess(pair, tmp_path, monkeypatch, limit="1")
    kept = ad.read_h5ad(out["hvg"]["sc"])
    assert kept.uns["causalged"]["hvg"]["n_cells_for_variability"] == 300
    assert kept.n_obs > 300 and kept.var["causalged_shared"].sum() > 0


def test_bad_stream_limit_and_bad_values_are_named(pair, tmp_path, monkeypatch):
    monkeypatch.setenv(stream.STREAM_VARIABLE, "lots")
    with pytest.raises(InputError, match="CAUSALGED_STREAM_ENTRIES='lots'"):
        qc.run(sample="s", sc=pair["sc"], st=pair["st"], outdir=tmp_path / "a")
    broken = ad.read_h5ad(pair["sc"])
    broken.X.data[5] = -1.0
    path = tmp_path / "negative_sc.h5ad"
    broken.write_h5ad(path)
    monkeypatch.setenv(stream.STREAM_VARIABLE, "1")
    with pytest.raises(InputError, match="negative values") as err:
        qc.run(sample="s", sc=path, st=pair["st"], outdir=tmp_path / "b")
    assert str(path) in str(err.value)
    assert not list((tmp_path / "b").glob("*.h5ad"))
