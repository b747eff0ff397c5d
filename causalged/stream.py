"""Large references block by block, so that qc, normalize and hvg run in bounded memory.

A reference with more stored entries than :func:`stream_limit` (``CAUSALGED_STREAM_ENTRIES``,
default 2^28, about 2 GB as float32 CSR) is never read whole by the preprocessing steps:
:func:`read_reference` opens it as a :class:`BackedReference`, whose matrices stay on disk and
are read a block of rows at a time, and the steps return their output as
:class:`~causalged.io.RowBlocks`, written block by block. Below the limit a step reads the
file into memory as before; both routes give the same file (tests/test_stream.py). Only the
reference is streamed: an ST matrix (10^5 spots x a panel of genes) fits in memory.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import anndata as ad
import numpy as np
import scipy.sparse as sp

from causalged.io import check_names, check_readable, check_values, not_anndata, read_h5ad
from causalged.limits import size_limit

#: Stored reference entries above which qc, normalize and hvg stream it (float32 CSR: 8 bytes each).
STREAM_ENTRIES = 2**28
STREAM_VARIABLE = "CAUSALGED_STREAM_ENTRIES"
#: Stored entries in one row block: about 130 MB of CSR, a few hundred blocks for an atlas.
BLOCK_ENTRIES = 2**24


def stream_limit() -> int:
    """The limit in force (:data:`STREAM_ENTRIES`, or :data:`STREAM_VARIABLE`)."""
    return size_limit(STREAM_VARIABLE, STREAM_ENTRIES, meaning="the most stored reference entries a step reads into memory")


def stored_entries(path: str | Path) -> int:
    """Non-zeros of a sparse ``X`` (every entry of a dense one), from the file's header; 0 if unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            matrix = handle["X"]
            return int(matrix["data"].shape[0]) if isinstance(matrix, h5py.Group) else int(np.prod(matrix.shape))
    except (OSError, KeyError):
        return 0  # not an .h5ad with a matrix: read_h5ad names the problem


@dataclass
class BackedReference:
    """A reference whose matrices stay on disk: ``skeleton`` holds obs, var, uns and obsm."""

    path: Path
    skeleton: ad.AnnData
    matrices: dict  # "X" and each layer -> an on-disk handle (anndata sparse dataset or h5py dataset)
    file: object

    n_obs = property(lambda self: self.skeleton.n_obs)
    n_vars = property(lambda self: self.skeleton.n_vars)
    obs_names = property(lambda self: self.skeleton.obs_names)
    var_names = property(lambda self: self.skeleton.var_names)
    var = property(lambda self: self.skeleton.var)
    uns = property(lambda self: self.skeleton.uns)

    def columns(self, genes: dict[str, list[str]]) -> dict[str, sp.csr_matrix]:
        """For each named list of genes, those columns of ``X`` over every cell, in one pass: the
        modelling steps' way to take their genes without holding the whole matrix."""
        where = {name: self.var_names.get_indexer(names) for name, names in genes.items()}
        parts: dict[str, list] = {name: [] for name in genes}
        for _, block in self.blocks(desc=f"taking genes ({', '.join(genes)})"):
            for name, index in where.items():
                parts[name].append(block["X"][:, index])
        return {name: stack_rows(blocks) for name, blocks in parts.items()}

    def pooled_columns(self, genes: list[str], pool: sp.csr_matrix) -> np.ndarray:
        """``pool @ X[:, genes]`` (metacells x genes, float32) summed a block of cells at a time:
        an atlas's targets as a fit on metacells sees them, without their cells x genes matrix."""
        index = self.var_names.get_indexer(genes)
        pool = sp.csc_matrix(pool)  # sliced by cells below
        out = np.zeros((pool.shape[0], len(genes)), dtype=np.float32)
        for rows, block in self.blocks(desc="pooling target genes into metacells"):
            out += (pool[:, rows] @ block["X"][:, index]).toarray()
        return out

    def blocks(self, keys: tuple[str, ...] = ("X",), *, desc: str = "reading") -> Iterator[tuple[slice, dict]]:
        """``(rows, {key: CSR block})`` over consecutive rows of about :data:`BLOCK_ENTRIES` stored
        entries; ``X`` values are checked as they are read. A pass over an atlas takes minutes:
        a progress bar (on standard error, every 10 s) says how far it is."""
        from tqdm.auto import tqdm

        per_block = max(1, int(BLOCK_ENTRIES * self.n_obs / max(1, stored_matrix_entries(self.matrices["X"]))))
        starts = range(0, self.n_obs, per_block)
        for start in tqdm(starts, desc=f"{self.path.name}: {desc}", unit="block", mininterval=10.0, leave=False):
            rows = slice(start, min(start + per_block, self.n_obs))
            block = {key: sp.csr_matrix(self.matrices[key][rows]) for key in keys}
            if "X" in block:
                check_values(block["X"], path=self.path)
            yield rows, block

    def close(self) -> None:
        self.file.close()


def reference_columns(reference, genes: dict[str, list[str]]) -> dict:
    """For each named list of genes, those columns of the reference's ``X`` over every cell, as
    stored: one pass of row blocks for a :class:`BackedReference`, a slice of an in-memory AnnData."""
    if isinstance(reference, BackedReference):
        return reference.columns(genes)
    return {name: reference[:, names].X for name, names in genes.items()}


def stack_rows(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """``scipy.sparse.vstack`` that empties ``blocks`` as it copies them, so the peak is the
    result plus one block instead of twice the result."""
    n_cols = blocks[0].shape[1]
    nnz = sum(block.nnz for block in blocks)
    index_type = np.int64 if max(nnz, n_cols) > np.iinfo(np.int32).max else np.int32  # one type: scipy would copy to unify
    data = np.empty(nnz, dtype=blocks[0].dtype)
    indices = np.empty(nnz, dtype=index_type)
    indptr = [np.zeros(1, dtype=index_type)]
    at = 0
    while blocks:
        block = blocks.pop(0)
        data[at:at + block.nnz], indices[at:at + block.nnz] = block.data, block.indices
        indptr.append(block.indptr[1:].astype(index_type) + at)
        at += block.nnz
    indptr = np.concatenate(indptr)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_cols))


def stored_matrix_entries(handle) -> int:
    group = getattr(handle, "group", None)
    return int(group["data"].shape[0]) if group is not None else int(np.prod(handle.shape))


def open_backed(path: str | Path, *, role: str = "sc") -> BackedReference:
    """Open an .h5ad with its matrices left on disk; the checks of :func:`~causalged.io.read_h5ad`
    that need no values run now, the value checks as blocks are read."""
    import h5py
    from anndata.io import read_elem, sparse_dataset

    path = check_readable(path, role=role)
    try:
        handle = h5py.File(path, "r")
        parts = {key: read_elem(handle[key]) for key in ("obs", "var", "uns", "obsm") if key in handle}
        matrices = {"X": handle["X"]}
        matrices.update({name: handle["layers"][name] for name in handle.get("layers", {})})
        matrices = {key: sparse_dataset(item) if isinstance(item, h5py.Group) else item for key, item in matrices.items()}
    except Exception as err:  # not HDF5, or HDF5 without the AnnData layout
        raise not_anndata(path, err) from err
    skeleton = check_names(ad.AnnData(obs=parts["obs"], var=parts["var"], uns=parts.get("uns", {}), obsm=parts.get("obsm", {})),
                           path=path, role=role)
    return BackedReference(path=path, skeleton=skeleton, matrices=matrices, file=handle)


@contextlib.contextmanager
def read_reference(path: str | Path, *, layers: bool = True):
    """The reference as a step should hold it: in memory (``layers=False``: without its layers),
    or backed above :func:`stream_limit`."""
    if stored_entries(path) <= stream_limit():
        yield read_h5ad(path, role="sc", layers=layers)
        return
    backed = open_backed(path, role="sc")
    try:
        yield backed
    finally:
        backed.close()
