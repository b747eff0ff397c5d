"""Imputation in blocks of genes: the block writer's file reads back as the one-piece file, and
`causalged impute` gives the same imputed values whatever the block size."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from causalged.arrays import genes_per_block
from causalged.io import write_h5ad_atomic, write_h5ad_columns_atomic
from causalged.steps import impute as impute_step, train as train_step


def _assert_same_anndata(a: ad.AnnData, b: ad.AnnData) -> None:
    np.testing.assert_array_equal(a.X, b.X)
    assert set(a.layers) == set(b.layers)
    for key in a.layers:
        np.testing.assert_array_equal(a.layers[key], b.layers[key])
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    assert a.uns.keys() == b.uns.keys() and a.uns["causalged"]["impute"] == b.uns["causalged"]["impute"]


def test_block_writer_gives_the_file_of_the_one_piece_writer(tmp_path):
    rng = np.random.default_rng(0)
    mean, std = rng.random((30, 11), dtype=np.float32), rng.random((30, 11), dtype=np.float32)
    var = pd.DataFrame({"expected_pcc": rng.random(11)}, index=[f"g{i}" for i in range(11)])
    obs = pd.DataFrame({"domain": pd.Categorical(["a", "b"] * 15)}, index=[f"s{i}" for i in range(30)])
    whole = ad.AnnData(X=mean, obs=obs, var=var.assign(score=np.arange(11.0)), layers={"std": std})
    whole.obsm["spatial"] = rng.random((30, 2))
    whole.uns["causalged"] = {"impute": {"method": "m", "n_targets": 11}}
    write_h5ad_atomic(whole, tmp_path / "whole.h5ad")

    skeleton = ad.AnnData(obs=obs.copy(), var=var.copy())
    skeleton.obsm["spatial"] = whole.obsm["spatial"]

    def blocks():
        for start in range(0, 11, 4):  # blocks of 4, 4 and 3 genes
            yield start, {"X": mean[:, start:start + 4], "std": std[:, start:start + 4]}
        skeleton.var["score"] = np.arange(11.0)  # per-gene results known only after the last block
        skeleton.uns["causalged"] = {"impute": {"method": "m", "n_targets": 11}}

    write_h5ad_columns_atomic(skeleton, tmp_path / "blocks.h5ad", blocks())
    _assert_same_anndata(ad.read_h5ad(tmp_path / "blocks.h5ad"), ad.read_h5ad(tmp_path / "whole.h5ad"))
    with h5py.File(tmp_path / "blocks.h5ad") as handle:
        assert handle["X"].compression == handle["layers/std"].compression == "gzip"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_block_writer_leaves_no_file_when_a_block_fails(tmp_path):
    skeleton = ad.AnnData(obs=pd.DataFrame(index=["s0", "s1"]), var=pd.DataFrame(index=["g0", "g1"]))

    def blocks():
        yield 0, {"X": np.ones((2, 1), dtype=np.float32)}
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        write_h5ad_columns_atomic(skeleton, tmp_path / "out.h5ad", blocks())
    assert list(tmp_path.iterdir()) == []  # atomic: neither the file nor its temporary


def test_default_block_size_bounds_memory_and_keeps_small_runs_in_one_block():
    assert genes_per_block(600, 8) > 10_000  # demo size (under 200 targets): all in one block, as before
    big = genes_per_block(100_000, 8)
    assert 4 * 100_000 * (8 + 2) * big <= 256 * 2**20 and big >= 1
    assert genes_per_block(100_000, 8, chunk_genes=7) == 7


@pytest.mark.parametrize("method", ["kernel_ridge", "knn_ridge_blend"])
def test_impute_in_blocks_gives_the_values_of_one_block(method, tiny_preprocessed, tmp_path):
    model = train_step.run(sample="tiny", sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"], outdir=tmp_path / "train", method=method, device="cpu")
    paths = {size: impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / f"chunk{size}", n_samples=3, device="cpu", chunk_genes=size) for size in (None, 2)}
    one, blocks = ad.read_h5ad(paths[None]), ad.read_h5ad(paths[2])
    assert blocks.n_vars > 2 and blocks.uns["causalged"]["impute"]["genes_per_block"] == 2
    np.testing.assert_allclose(blocks.X, one.X, rtol=1e-5, atol=1e-6)
    if method == "kernel_ridge":  # bootstrap refits only: the same per gene whatever the block
        np.testing.assert_allclose(blocks.layers["std"], one.layers["std"], rtol=1e-4, atol=1e-6)
    pd.testing.assert_frame_equal(blocks.var, one.var)
    assert (tmp_path / "chunk2" / "figures" / "tiny.target_maps.png").stat().st_size > 0
    assert (tmp_path / "chunk2" / "tiny.simulated_truth_mqc.tsv").read_text() == (tmp_path / "chunkNone" / "tiny.simulated_truth_mqc.tsv").read_text()


def test_impute_records_a_pooled_reference(monkeypatch, tiny_preprocessed, tmp_path):
    """Above the cell limit `causalged impute` fits the default on metacells and says so in uns."""
    from causalged.methods.base import FIT_CELLS_VARIABLE

    model = train_step.run(sample="tiny", sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"], outdir=tmp_path / "train", method="knn_ridge_blend", device="cpu")
    whole = ad.read_h5ad(impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / "whole", n_samples=2, device="cpu"))
    monkeypatch.setenv(FIT_CELLS_VARIABLE, "50")
    pooled = ad.read_h5ad(impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / "pooled", n_samples=2, device="cpu"))
    n_cells = ad.read_h5ad(tiny_preprocessed["sc"]).n_obs
    assert "reference_pooled" not in whole.uns["causalged"]["impute"]  # None is not written
    assert dict(pooled.uns["causalged"]["impute"]["reference_pooled"]) == {"cells": n_cells, "metacells": 50, "limit_variable": FIT_CELLS_VARIABLE}
    assert pooled.shape == whole.shape and np.isfinite(pooled.X).all() and not np.allclose(pooled.X, whole.X)


def test_impute_from_a_reference_on_disk_gives_the_in_memory_values(monkeypatch, tiny_preprocessed, tmp_path):
    """Above the stream limit impute takes its genes from the reference in blocks of cells, never whole."""
    import causalged.stream as stream

    model = train_step.run(sample="tiny", sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"], outdir=tmp_path / "train", method="knn_ridge_blend", device="cpu")
    whole = ad.read_h5ad(impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / "whole", n_samples=2, device="cpu"))
    passes = []
    original = stream.BackedReference.columns
    monkeypatch.setattr(stream.BackedReference, "columns", lambda self, genes: passes.append(list(genes)) or original(self, genes))
    monkeypatch.setattr(stream, "BLOCK_ENTRIES", 500)
    monkeypatch.setenv(stream.STREAM_VARIABLE, "1")
    streamed = ad.read_h5ad(impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / "streamed", n_samples=2, device="cpu"))
    assert passes == [["genes"], ["genes"]]  # the fitting genes, then the targets
    _assert_same_anndata(whole, streamed)


def test_pooled_targets_from_a_reference_on_disk_are_pooled_as_they_are_read(monkeypatch, tiny_preprocessed, tmp_path):
    """Above both limits the targets are pooled into the fit's metacells a block of cells at a
    time (never held cell by cell) and the imputed values are those of the in-memory route."""
    import causalged.stream as stream
    from causalged.methods.base import FIT_CELLS_VARIABLE

    model = train_step.run(sample="tiny", sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"], outdir=tmp_path / "train", method="knn_ridge_blend", device="cpu")
    monkeypatch.setenv(FIT_CELLS_VARIABLE, "50")
    in_memory = ad.read_h5ad(impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / "memory", n_samples=2, device="cpu"))
    taken, pooled = [], []
    columns, pooled_columns = stream.BackedReference.columns, stream.BackedReference.pooled_columns
    monkeypatch.setattr(stream.BackedReference, "columns", lambda self, genes: taken.append(list(genes)) or columns(self, genes))
    monkeypatch.setattr(stream.BackedReference, "pooled_columns",
                        lambda self, genes, pool: pooled.append((len(genes), pool.shape)) or pooled_columns(self, genes, pool))
    monkeypatch.setattr(stream, "BLOCK_ENTRIES", 500)
    monkeypatch.setenv(stream.STREAM_VARIABLE, "1")
    streamed = ad.read_h5ad(impute_step.run(sample="tiny", model=model, sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], outdir=tmp_path / "streamed", n_samples=2, device="cpu"))
    n_cells = ad.read_h5ad(tiny_preprocessed["sc"]).n_obs
    assert taken == [["genes"]] and pooled == [(streamed.n_vars, (50, n_cells))]  # fitting genes by cell; targets only pooled
    np.testing.assert_allclose(streamed.X, in_memory.X, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(streamed.layers["std"], in_memory.layers["std"], rtol=1e-3, atol=1e-5)


def test_a_crossval_fold_reads_a_reference_on_disk_in_one_pass(monkeypatch, tiny_preprocessed, tmp_path):
    """Above the stream limit a fold takes its training and held-out genes in one pass of row
    blocks (the reference is never read whole) and predicts what the in-memory route predicts."""
    import causalged.stream as stream
    from causalged.steps import crossval as crossval_step

    inputs = dict(sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"])
    options = dict(methods="knn_ridge_blend,kernel_ridge", n_samples=3, seed=1)
    in_memory = ad.read_h5ad(crossval_step.run(sample="tiny", **inputs, fold=1, outdir=tmp_path / "memory", **options))
    passes = []
    columns = stream.BackedReference.columns
    monkeypatch.setattr(stream.BackedReference, "columns", lambda self, genes: passes.append(sorted(genes)) or columns(self, genes))
    monkeypatch.setattr(stream, "BLOCK_ENTRIES", 500)
    monkeypatch.setenv(stream.STREAM_VARIABLE, "1")
    streamed = ad.read_h5ad(crossval_step.run(sample="tiny", **inputs, fold=1, outdir=tmp_path / "streamed", **options))
    assert passes == [["heldout", "train"]]
    assert list(streamed.var_names) == list(in_memory.var_names) and streamed.n_vars > 0
    np.testing.assert_array_equal(streamed.X, in_memory.X)
    for layer in ("knn_ridge_blend", "knn_ridge_blend_q05", "knn_ridge_blend_q95", "kernel_ridge"):
        np.testing.assert_allclose(streamed.layers[layer], in_memory.layers[layer], rtol=1e-4, atol=1e-5, err_msg=layer)


def test_a_crossval_fold_samples_a_block_of_genes_at_a_time(monkeypatch, tiny_preprocessed, tmp_path):
    """A fold draws its interval samples for a block of held-out genes at a time (at 10^5 spots all
    500 at once would be gigabytes): the predictions are those of one block and the intervals as wide."""
    import causalged.arrays as arrays
    from causalged.steps import crossval as crossval_step
    from causalged.methods.blend import KnnRidgeBlendImputer

    inputs = dict(sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"])
    options = dict(methods="knn_ridge_blend", n_samples=20, seed=1)
    whole = ad.read_h5ad(crossval_step.run(sample="tiny", **inputs, fold=1, outdir=tmp_path / "whole", **options))
    calls = []
    sampler = KnnRidgeBlendImputer.predict_with_samples
    monkeypatch.setattr(KnnRidgeBlendImputer, "predict_with_samples", lambda self, sc, **kw: calls.append(sc.shape[1]) or sampler(self, sc, **kw))
    monkeypatch.setattr(arrays, "GENE_BLOCK_BYTES", 4 * whole.n_obs * 22 * 2)  # two genes a block
    blocked = ad.read_h5ad(crossval_step.run(sample="tiny", **inputs, fold=1, outdir=tmp_path / "blocked", **options))
    assert whole.n_vars > 2 and max(calls) == 2 and sum(calls) == whole.n_vars
    np.testing.assert_allclose(blocked.layers["knn_ridge_blend"], whole.layers["knn_ridge_blend"], rtol=1e-5, atol=1e-6)

    def width(a):
        return float(np.mean(a.layers["knn_ridge_blend_q95"] - a.layers["knn_ridge_blend_q05"]))

    assert width(blocked) == pytest.approx(width(whole), rel=0.1) and width(whole) > 0


def test_a_folds_last_method_gets_the_only_copy_of_the_reference(monkeypatch, tiny_preprocessed):
    """The fold's last fit is handed the training genes' reference, so once the fit has made its
    own (pooled, dense) copy the cells are freed; earlier methods leave it to the next."""
    import weakref

    import scipy.sparse as sp

    from causalged.evaluation.crossval import run_fold
    from causalged.evaluation.crossval import load_inputs
    from causalged.methods.base import Imputer

    survived = []
    fit = Imputer.fit

    def watched_fit(self, sc_train, st_train, **kwargs):
        assert sp.issparse(sc_train)
        ref, handed = weakref.ref(sc_train), [sc_train]
        del sc_train
        out = fit(self, handed.pop(), st_train, **kwargs)
        survived.append(ref() is not None)
        return out

    monkeypatch.setattr(Imputer, "fit", watched_fit)
    sc_data, st_data, split = load_inputs(tiny_preprocessed["sc"], tiny_preprocessed["st"], tiny_preprocessed["split"])
    run_fold(sc_data, st_data, split, 0, methods=["knn", "kernel_ridge"], n_samples=0)
    assert survived == [True, False]
