"""Reading validated AnnData inputs and writing every output atomically.

Every pipeline step goes through :func:`read_h5ad` so a bad file fails the same way
everywhere, with an :class:`~causalged.errors.InputError` that names the file and the fix.
Outputs are written to a temporary file beside the target and moved into place with
``os.replace``, so an interrupted step never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from causalged.errors import InputError, os_error

log = logging.getLogger(__name__)
_UMASK = os.umask(0)
os.umask(_UMASK)

Role = Literal["sc", "st"]
ROLE_NAMES = {"sc": "scRNA-seq reference", "st": "spatial (ST) data"}
#: obs column pairs accepted as ST coordinates when ``obsm["spatial"]`` is absent, in order of preference.
COORDINATE_COLUMNS = (("x", "y"), ("x_coord", "y_coord"))


def read_h5ad(path: str | Path, *, role: Role, layers: bool = True) -> ad.AnnData:
    """Read and validate one input matrix.

    Checks: the file exists, is readable AnnData, is not empty, holds no negative or NaN
    values, has unique cell/spot names, unique gene names (reference duplicates are made
    unique with a warning, ST duplicates are an error), and for the ST role has spot
    coordinates, which end up in ``obsm["spatial"]``. ``layers=False`` leaves the layers on
    disk (the modelling steps use the reference's ``X`` only: its counts layer is as large).
    """
    path = check_readable(path, role=role)
    try:
        adata = ad.read_h5ad(path) if layers else _read_without_layers(path)
    except Exception as err:  # h5py/anndata raise many types for a non-h5ad file
        raise not_anndata(path, err) from err
    check_values(adata.X, path=path)
    return check_names(adata, path=path, role=role)


def _read_without_layers(path: Path) -> ad.AnnData:
    """Every part of the file but its layers (and ``raw``)."""
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as handle:
        return ad.AnnData(**{key: read_elem(handle[key]) for key in ("X", "obs", "var", "uns", "obsm", "varm", "obsp", "varp") if key in handle})


def check_readable(path: str | Path, *, role: Role) -> Path:
    """The file exists, is a file and can be read: else an error naming it and the fix."""
    path = Path(path)
    what = ROLE_NAMES[role]
    if not path.exists():
        raise InputError(path, f"the {what} file does not exist", "check the path (relative paths are resolved from the current directory)")
    if path.is_dir():
        raise InputError(path, f"expected an .h5ad file for the {what}, found a directory", "point to the .h5ad file inside it")
    if not os.access(path, os.R_OK):
        raise InputError(path, "the file is not readable", "fix its permissions (chmod +r)")
    return path


def not_anndata(path: Path, err: Exception) -> InputError:
    """The error for a file that exists but is not AnnData (h5py and anndata raise many types)."""
    return InputError(
        path,
        f"could not be read as AnnData .h5ad ({type(err).__name__}: {err})",
        "convert the matrix to .h5ad with anndata (e.g. `adata.write_h5ad(...)`); CSV/loom/mtx are not read directly",
    )


def check_names(adata: ad.AnnData, *, path: Path, role: Role) -> ad.AnnData:
    """The checks of :func:`read_h5ad` that need no matrix values: size, names, ST coordinates."""
    what = ROLE_NAMES[role]
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(path, f"the {what} matrix is empty ({adata.n_obs} observations x {adata.n_vars} genes)", "provide a matrix with at least one observation and one gene")
    if not adata.var_names.is_unique:
        duplicated = sorted(set(adata.var_names[adata.var_names.duplicated()]))
        if role == "st":  # a panel gene measured twice: no way to tell which column is the gene
            raise InputError(path, f"{len(duplicated)} gene names appear more than once in the ST panel (e.g. {', '.join(duplicated[:5])})",
                             "keep one column per gene (sum or drop the duplicates) before running")
        log.warning("%s: %d duplicated gene names made unique (e.g. %s)", path, len(duplicated), ", ".join(duplicated[:5]))
        adata.var_names_make_unique()
    if not adata.obs_names.is_unique:
        duplicated = sorted(set(adata.obs_names[adata.obs_names.duplicated()]))
        noun = "cell" if role == "sc" else "spot"
        raise InputError(path, f"{len(duplicated)} {noun} names appear more than once (e.g. {', '.join(duplicated[:5])}); models match {noun}s by name",
                         "make them unique, e.g. adata.obs_names_make_unique() (or prefix each batch's barcodes) and save the file again")
    if role == "st":
        adata.obsm["spatial"] = spatial_coords(adata, path=path)
    return adata


def check_values(matrix, *, path: str | Path) -> None:
    """Refuse NaN, infinite or negative values, which no count or log-normalised matrix has."""
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise InputError(path, "the expression matrix contains NaN or infinite values", "replace missing values with 0 (not measured) or drop those rows/genes before running")
    if values.min() < 0:
        raise InputError(path, f"the expression matrix contains negative values (min {values.min():.3g})", "provide raw counts (or log-normalised values, with --already-normalized); scaled/centred matrices are not accepted")


def spatial_coords(adata: ad.AnnData, *, path: str | Path | None = None) -> np.ndarray:
    """Spot coordinates as an (n_spots, 2) float array from ``obsm["spatial"]`` or obs columns."""
    if "spatial" in adata.obsm:
        coords = np.asarray(adata.obsm["spatial"], dtype=float)
        if coords.ndim != 2 or coords.shape[1] < 2:
            raise InputError(path, f'obsm["spatial"] has shape {coords.shape}, expected (n_spots, 2)', "store x and y coordinates as two columns")
        coords = coords[:, :2]
    else:
        pair = next((p for p in COORDINATE_COLUMNS if set(p) <= set(adata.obs.columns)), None)
        if pair is None:
            raise InputError(
                path,
                'the spatial data has no spot coordinates (no obsm["spatial"], no obs columns x/y or x_coord/y_coord)',
                'add the coordinates as adata.obsm["spatial"] (n_spots x 2) or as obs columns "x" and "y"',
            )
        coords = adata.obs[list(pair)].to_numpy(dtype=float)
    if not np.all(np.isfinite(coords)):
        raise InputError(path, "spot coordinates contain NaN or infinite values", "remove spots without coordinates")
    return coords


def read_gene_list(path: str | Path) -> list[str]:
    """Genes to impute: one name per line; blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "the gene list file does not exist", "give a text file with one gene name per line")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel, Notepad) is not part of the first gene
    except UnicodeDecodeError as err:
        raise InputError(path, f"the gene list is not UTF-8 text ({err.reason} at byte {err.start})",
                         "save it as plain UTF-8 text, one gene name per line (not an .h5ad or a spreadsheet)") from None
    genes = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    genes = [g for g in genes if g]
    if not genes:
        raise InputError(path, "the gene list is empty", "list one gene name per line, or leave the samplesheet's genes column empty")
    return list(dict.fromkeys(genes))


def ensure_not_input(output: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse to write over an input file."""
    out = Path(output).resolve()
    for item in inputs:
        if item is not None and Path(item).resolve() == out:
            raise InputError(output, "this output would overwrite an input file", "choose a different --outdir or sample name")


def check_writable(folder: str | Path) -> None:
    """Fail now, not after the computing, when ``folder`` (or the folder it will be made in) takes no file."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise InputError(existing, "is a file, where an output folder is needed", "choose another --outdir")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-probe.", suffix=".tmp"):
            pass
    except OSError as err:
        raise os_error(err, folder) from err


def _atomic_target(path: str | Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give outputs the usual permissions
    return path, Path(tmp)


def atomic_write(path: str | Path, writer) -> Path:
    """Call ``writer(tmp_path)`` then move the finished file to ``path``; no partial file on failure.

    Operating-system errors (read-only folder, disk full) become an :class:`InputError` that
    names ``path``. A process killed between the two leaves only a hidden ``.<name>.*.tmp``,
    which :func:`remove_stale_temporaries` clears.
    """
    try:
        path, tmp = _atomic_target(path)
    except OSError as err:
        raise os_error(err, path) from err
    try:
        writer(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise os_error(err, path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_folder(path: str | Path, writer) -> Path:
    """Call ``writer(tmp_folder)`` (a path that does not exist yet), then put the finished folder at ``path``.

    A folder cannot replace another in one rename, so a previous folder is first renamed aside
    (a hidden ``.<name>.*.tmp``) and removed after: a kill leaves the old or the new folder in
    place plus a temporary that :func:`remove_stale_temporaries` clears, never a half-written one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.rmdir()
    except OSError as err:
        raise os_error(err, path) from err
    try:
        writer(tmp)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            old.rmdir()
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(err, path) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary of :func:`atomic_write` (or of the MultiQC step)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries a killed write left under ``folder``; returns what was removed."""
    import shutil

    folder = Path(folder)
    stale = sorted(p for p in folder.rglob(".*.tmp") if is_temporary(p)) if folder.is_dir() else []
    for item in stale:
        shutil.rmtree(item) if item.is_dir() else item.unlink(missing_ok=True)
    return stale


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of every file under a folder (names and bytes), for resume records."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not is_temporary(p)) if path.is_dir() else [path]
    for item in files:
        digest.update(str(item.relative_to(path) if path.is_dir() else "").encode())
        with open(item, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class RowBlocks:
    """An AnnData too large to hold: every part but its matrices (``skeleton``), and ``blocks``,
    which yields its rows a block at a time as ``{"X": csr, layer: csr}``. Steps return one for
    a large reference (causalged/stream.py); :func:`write_h5ad_atomic` writes it block by block."""

    skeleton: ad.AnnData
    blocks: Callable[[], Iterator[dict[str, sp.spmatrix]]]

    def to_memory(self) -> ad.AnnData:
        stacked: dict[str, list] = {}
        for block in self.blocks():
            for key, matrix in block.items():
                stacked.setdefault(key, []).append(sp.csr_matrix(matrix))
        adata = self.skeleton.copy()
        for key, parts in stacked.items():
            matrix = sp.vstack(parts, format="csr")
            if key == "X":
                adata.X = matrix
            else:
                adata.layers[key] = matrix
        return adata


#: Compression of every .h5ad we write. Level 1, not h5py's default 4: on a block of the scale
#: benchmark's simulated reference it wrote a CSR matrix (values and indices) about 5x faster and
#: no larger in all (the int32 indices compress worst, and slowest, at level 4), so writing a
#: 1M-cell reference is no longer most of the cost of qc, normalize and hvg.
GZIP = {"compression": "gzip", "compression_opts": 1}


def write_h5ad_atomic(adata: ad.AnnData | RowBlocks, path: str | Path) -> Path:
    if isinstance(adata, RowBlocks):
        return write_h5ad_rows_atomic(adata.skeleton, path, adata.blocks())
    return atomic_write(path, lambda tmp: adata.write_h5ad(tmp, **GZIP))


def write_h5ad_columns_atomic(skeleton: ad.AnnData, path: str | Path, chunks: Iterable[tuple[int, dict[str, np.ndarray]]]) -> Path:
    """Write a dense spots x genes AnnData a block of genes at a time, atomically.

    ``skeleton`` has every part but the matrices (``X`` None, no layers); ``chunks`` yields
    ``(first column, {"X": block, layer: block, ...})`` and may update ``skeleton.var`` and
    ``skeleton.uns`` as it goes (per-gene scores), which are written after the last block. Only
    one block is in memory at a time; the file reads back as :func:`write_h5ad_atomic` would
    have written the whole matrix (same keys, values and gzip compression).
    """
    import h5py
    from anndata.io import write_elem

    shape = (skeleton.n_obs, skeleton.n_vars)
    options = {**GZIP, "chunks": True} if min(shape) > 0 else {}

    def writer(tmp):
        skeleton.write_h5ad(tmp, **GZIP)
        with h5py.File(tmp, "r+") as handle:
            datasets = {}
            for start, blocks in chunks:
                for key, block in blocks.items():
                    if key not in datasets:
                        datasets[key] = handle.require_group("layers").create_dataset(key, shape, np.float32, **options) if key != "X" \
                            else handle.create_dataset("X", shape, np.float32, **options)
                        datasets[key].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
                    datasets[key][:, start:start + block.shape[1]] = block
            for key in ("var", "uns"):  # per-gene scores computed along the way
                write_elem(handle, key, dict(skeleton.uns) if key == "uns" else skeleton.var, dataset_kwargs=GZIP)

    return atomic_write(path, writer)


def write_h5ad_rows_atomic(skeleton: ad.AnnData, path: str | Path, blocks: Iterable[dict[str, sp.spmatrix]]) -> Path:
    """Write a sparse observations x genes AnnData a block of rows at a time, atomically.

    The row-wise twin of :func:`write_h5ad_columns_atomic`, for references too large to hold:
    ``skeleton`` has every part but the matrices; ``blocks`` yields ``{"X": csr, layer: csr}``
    for consecutive rows. The file reads back as CSR with gzip compression.
    """
    import h5py
    from anndata.io import sparse_dataset, write_elem

    # h5py would size chunks from the first block; fixed large chunks keep reads of any block fast
    options = {**GZIP, "chunks": (1 << 18,)}

    def writer(tmp):
        skeleton.write_h5ad(tmp, **GZIP)
        with h5py.File(tmp, "r+") as handle:
            written: dict[str, int] = {}
            for block in blocks:
                for key, matrix in block.items():
                    group = handle if key == "X" else handle.require_group("layers")
                    matrix = sp.csr_matrix(matrix)
                    if key in written:
                        sparse_dataset(group[key]).append(matrix)
                    else:
                        write_elem(group, key, matrix, dataset_kwargs=options)
                    written[key] = written.get(key, 0) + matrix.shape[0]
            if any(rows != skeleton.n_obs for rows in written.values()):
                raise ValueError(f"row blocks gave {written} rows for {skeleton.n_obs} observations")

    return atomic_write(path, writer)


def write_text_atomic(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    return write_text_atomic(json.dumps(to_jsonable(obj), indent=2) + "\n", path)


def write_csv_atomic(df: pd.DataFrame, path: str | Path, **kwargs) -> Path:
    return atomic_write(path, lambda tmp: df.to_csv(tmp, **kwargs))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and paths nested in dicts/lists into JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def record_step(adata: ad.AnnData, step: str, info: dict[str, Any]) -> None:
    """Record what a step did under ``adata.uns["causalged"][step]`` (h5ad-safe types)."""
    store = dict(adata.uns.get("causalged", {}))
    store[step] = _drop_none(to_jsonable(info))
    adata.uns["causalged"] = store


def _drop_none(obj: Any) -> Any:
    """h5ad cannot store None: drop such entries from nested dicts."""
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj
