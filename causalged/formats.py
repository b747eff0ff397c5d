"""Data as people have it: instrument folders, SpatialData and reference formats in, the internal pair out.

Spatial data arrive as a Space Ranger ``outs/`` folder (Visium, Visium HD), a Xenium bundle, a
MERSCOPE region folder, CosMx flat files or a SpatialData ``.zarr``; references as an .h5ad
(CELLxGENE's puts normalized values in ``X`` and counts in ``.raw.X``), a Cell Ranger ``.h5`` or
matrix folder, or a ``.loom``. Each is recognised from its files alone and read with the field's
own readers (spatialdata-io for the instruments, spatialdata for ``.zarr``, scanpy and anndata for
the rest), reading only what imputation needs: the count table and the positions, no images,
transcripts or boundaries. Every reader ends in the same AnnData the pipeline has always taken:
raw integer counts in ``X``, genes named by symbol, the slide's global positions in
``obsm["spatial"]``, the input's own cell or spot ids as ``obs_names``, control probes and blank
codewords dropped. What was decided (reader and version, files and checksums, bin size, where the
counts were found, how gene ids were mapped) is returned for the import step to record.
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from causalged.errors import InputError

log = logging.getLogger(__name__)

#: Gene-name columns a reference indexed by Ensembl ids may carry, in order of preference.
SYMBOL_COLUMNS = ("feature_name", "gene_symbols", "gene_symbol", "gene_name", "gene_names", "symbol", "features", "gene")
#: Features that are not genes: Xenium negative-control probes and codewords, MERSCOPE blanks, CosMx negative and system controls.
CONTROL_PATTERN = re.compile(r"^(NegControl|Neg[Pp]rb|NegPrb|UnassignedCodeword|DeprecatedCodeword|Intergenic|Blank-|BLANK_|SystemControl|antisense_)", re.I)
#: Fewest spots and reference cells a run accepts: a cross-validation fold scores each gene over the
#: spots, and the kNN view and the ridge views need more than a handful of each.
MIN_SPOTS = 10
MIN_CELLS = 10
#: Visium HD bin sizes Space Ranger writes (micrometres).
VISIUM_HD_BINS = (2, 8, 16)


# --------------------------------------------------------------------------- recognising a layout
def _has(folder: Path, *patterns: str) -> bool:
    return any(next(folder.glob(p), None) is not None for p in patterns)


#: layout -> (how it is recognised, the files a table-only read needs, as glob patterns; ``{bin}`` is the Visium HD bin size)
SPATIAL_LAYOUTS: dict[str, tuple[Callable[[Path], bool], tuple[str, ...]]] = {
    "spatialdata": (lambda p: p.suffix == ".zarr" or _has(p, "zarr.json", ".zgroup") and (p / "tables").is_dir(), ()),
    "xenium": (lambda p: _has(p, "experiment.xenium"), ("experiment.xenium", "cell_feature_matrix.h5", "cells.parquet")),
    "visium_hd": (lambda p: _has(p, "feature_slice.h5", "binned_outputs"), ("feature_slice.h5", "binned_outputs/square_{bin:03d}um/filtered_feature_bc_matrix.h5",
                                                                         "binned_outputs/square_{bin:03d}um/spatial/tissue_positions.parquet",
                                                                         "binned_outputs/square_{bin:03d}um/spatial/scalefactors_json.json")),
    "visium": (lambda p: _has(p, "spatial/tissue_positions*.csv", "*filtered_feature_bc_matrix.h5", "spatial/scalefactors_json.json"),
               ("*filtered_feature_bc_matrix.h5", "spatial/tissue_positions*.csv", "spatial/scalefactors_json.json")),
    "merscope": (lambda p: _has(p, "cell_by_gene.csv", "*cell_by_gene*.csv"), ("*cell_by_gene*.csv", "*cell_metadata*.csv",
                                                                             "images/micron_to_mosaic_pixel_transform.csv")),
    "cosmx": (lambda p: _has(p, "*_exprMat_file.csv", "*exprMat_file.csv"), ("*exprMat_file.csv", "*metadata_file.csv", "*fov_positions_file.csv")),
}
REFERENCE_LAYOUTS = {
    "h5ad": "an .h5ad file (counts in X, layers['counts'] or .raw.X)",
    "10x_h5": "a Cell Ranger .h5 matrix (filtered_feature_bc_matrix.h5)",
    "10x_mtx": "a Cell Ranger matrix folder (matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz)",
    "loom": "a .loom file",
}


def spatial_layout(path: str | Path) -> str:
    """What an ST input is: ``h5ad`` or one of :data:`SPATIAL_LAYOUTS`, from its files alone."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "the spatial data does not exist", "check the path (relative paths are resolved from the current directory)")
    if path.is_file():
        if path.suffix == ".h5ad":
            return "h5ad"
        raise InputError(path, f"a {path.suffix or 'suffix-less'} file is not a spatial input the pipeline reads",
                         f"pass an .h5ad file or an instrument folder ({', '.join(SPATIAL_LAYOUTS)})")
    for layout, (recognise, _) in SPATIAL_LAYOUTS.items():
        if recognise(path):
            return layout
    raise InputError(path, "this folder has no layout the pipeline knows (no experiment.xenium, spatial/tissue_positions*.csv, "
                           "feature_slice.h5, cell_by_gene.csv, *_exprMat_file.csv or SpatialData tables/)",
                     f"pass one of: {', '.join(SPATIAL_LAYOUTS)} (docs/usage.md, 'Inputs'), or an .h5ad")


#: samplesheet ``platform`` values (lower case, letters and digits only) that name a layout
PLATFORM_LAYOUTS = {"xenium": "xenium", "visium": "visium", "visiumhd": "visium_hd", "merscope": "merscope", "vizgen": "merscope",
                    "cosmx": "cosmx", "spatialdata": "spatialdata", "h5ad": "h5ad", "anndata": "h5ad"}


def confirm_platform(path: str | Path, layout: str, platform: str | None) -> None:
    """A samplesheet ``platform`` that names a layout must be the one recognised from the files."""
    named = PLATFORM_LAYOUTS.get(re.sub(r"[^a-z0-9]", "", (platform or "").lower()))
    if named is not None and named != layout:
        raise InputError(path, f"the samplesheet says platform {platform}, but the files are a {layout} layout",
                         f"correct the platform column (or leave it empty: the layout is recognised from the files), or point st at the {platform} output")


def reference_layout(path: str | Path) -> str:
    """What a reference input is: one of :data:`REFERENCE_LAYOUTS`."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "the scRNA-seq reference does not exist", "check the path (relative paths are resolved from the current directory)")
    if path.is_dir():
        if _has(path, "matrix.mtx", "matrix.mtx.gz"):
            return "10x_mtx"
        raise InputError(path, "this folder is not a Cell Ranger matrix folder (no matrix.mtx.gz)",
                         f"pass {'; or '.join(REFERENCE_LAYOUTS.values())}")
    suffixes = {".h5ad": "h5ad", ".h5": "10x_h5", ".loom": "loom"}
    if path.suffix in suffixes:
        return suffixes[path.suffix]
    raise InputError(path, f"a {path.suffix or 'suffix-less'} file is not a reference format the pipeline reads",
                     f"pass {'; or '.join(REFERENCE_LAYOUTS.values())}")


def _required_files(path: Path, layout: str, bin_size: int) -> None:
    """Each file a table-only read of ``layout`` needs is there: else the first missing one, named."""
    patterns = [p.format(bin=bin_size) for p in SPATIAL_LAYOUTS[layout][1]]
    for pattern in patterns:
        if not _has(path, pattern):
            raise InputError(path, f"this {layout} folder has no {pattern}, which reading its count table needs",
                             f"copy {pattern} from the instrument's output into the folder (a {layout} read needs: {', '.join(patterns)})")


# --------------------------------------------------------------------------- records
def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def file_records(path: str | Path, *, limit: int = 200) -> list[str]:
    """``"<sha256>  <relative path>"`` (as ``sha256sum`` prints it) for every file of an input (a file, or a folder's files up to ``limit``)."""
    from causalged.io import file_digest

    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:limit]
    return [f"{file_digest(file)}  {file.relative_to(path) if path.is_dir() else file.name}" for file in files]


# --------------------------------------------------------------------------- counts
def is_count_matrix(matrix) -> bool:
    """Non-negative finite whole numbers (stored as any dtype)."""
    from causalged.preprocess import is_integer_matrix

    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    return bool(values.size == 0 or (np.isfinite(values.min()) and values.min() >= 0 and np.isfinite(values.max()) and is_integer_matrix(matrix)))


def _as_counts(matrix):
    return sp.csr_matrix(matrix, dtype=np.float32) if sp.issparse(matrix) else np.asarray(matrix, dtype=np.float32)


def reference_counts(adata: ad.AnnData, *, path: Path, already_normalized: bool = False) -> tuple[ad.AnnData, str]:
    """The reference with its raw counts in ``X``: from ``X``, ``layers["counts"]`` or ``.raw.X``, whichever holds integer counts.

    With ``already_normalized`` the values of ``X`` are taken as they are (log-normalized, as the user says).
    """
    if already_normalized:
        return adata, "X (as given: --already-normalized)"
    candidates: list[tuple[str, Any, pd.DataFrame]] = [("X", adata.X, adata.var)]
    if "counts" in adata.layers:
        candidates.append(('layers["counts"]', adata.layers["counts"], adata.var))
    if adata.raw is not None:
        candidates.append((".raw.X", adata.raw.X, adata.raw.var))
    for where, matrix, var in candidates:
        if matrix is not None and is_count_matrix(matrix):
            out = ad.AnnData(X=_as_counts(matrix), obs=adata.obs.copy(), var=var.copy(), uns=dict(adata.uns), obsm=dict(adata.obsm))
            return out, where
    looked = ", ".join(w for w, _, _ in candidates)
    raise InputError(path, f"no raw integer counts found (looked in {looked}: the values are normalized, negative or non-integer)",
                     "provide the reference with raw counts in X, layers['counts'] or .raw.X (CELLxGENE files keep them in .raw.X), "
                     "or pass --already-normalized to `causalged run` if these are log-normalized values")


# --------------------------------------------------------------------------- references
def read_reference(path: str | Path, *, gene_symbols: str | None = None, already_normalized: bool = False) -> tuple[ad.AnnData, dict[str, Any]]:
    """A reference in any of :data:`REFERENCE_LAYOUTS` as raw counts in ``X``; the record of how it was read."""
    import scanpy as sc

    path = Path(path)
    layout = reference_layout(path)
    try:
        if layout == "h5ad":
            adata, reader = ad.read_h5ad(path), f"anndata.read_h5ad {package_version('anndata')}"
        elif layout == "10x_h5":
            adata, reader = sc.read_10x_h5(path, gex_only=True), f"scanpy.read_10x_h5 {package_version('scanpy')}"
        elif layout == "10x_mtx":
            adata, reader = sc.read_10x_mtx(path, var_names="gene_symbols", gex_only=True), f"scanpy.read_10x_mtx {package_version('scanpy')}"
        else:
            adata, reader = ad.io.read_loom(path), f"anndata.read_loom {package_version('anndata')} (loompy {package_version('loompy')})"
    except InputError:
        raise
    except Exception as err:  # each reader raises its own types for a damaged or foreign file
        raise InputError(path, f"could not be read as {REFERENCE_LAYOUTS[layout]} ({type(err).__name__}: {err})",
                         "check that the file is complete and of that format") from err
    adata, where = reference_counts(adata, path=path, already_normalized=already_normalized)
    if gene_symbols:
        if gene_symbols not in adata.var.columns:
            raise InputError(path, f"--gene-symbols {gene_symbols}: the reference has no var column of that name (it has: "
                                   f"{', '.join(map(str, adata.var.columns[:8])) or 'none'})", "name a var column that holds gene symbols")
    log.info("%s: read as %s; raw counts taken from %s", path, layout, where)
    return adata, {"layout": layout, "reader": reader, "counts_from": where, "files": file_records(path)}


# --------------------------------------------------------------------------- spatial data
def read_spatial(path: str | Path, *, bin_size: int = 8, platform: str | None = None) -> tuple[ad.AnnData, dict[str, Any]]:
    """ST input in any layout as counts in ``X`` with global positions in ``obsm["spatial"]``; the record of how it was read."""
    from causalged.io import check_names, check_values

    path = Path(path)
    layout = spatial_layout(path)
    confirm_platform(path, layout, platform)
    if layout == "h5ad":
        adata = ad.read_h5ad(path)
        info: dict[str, Any] = {"layout": "h5ad", "reader": f"anndata.read_h5ad {package_version('anndata')}"}
    else:
        if bin_size not in VISIUM_HD_BINS and layout == "visium_hd":
            raise InputError(None, f"--bin-size {bin_size} is not a Visium HD bin size", f"pass one of {', '.join(map(str, VISIUM_HD_BINS))}")
        _required_files(path, layout, bin_size)
        adata, info = _read_instrument(path, layout, bin_size=bin_size)
    adata, dropped = drop_controls(adata)
    if dropped:
        info["controls_dropped"] = dropped
        log.info("%s: %d control probes / blank codewords dropped (e.g. %s)", path, len(dropped), ", ".join(dropped[:3]))
    if not is_count_matrix(adata.X):
        check_values(adata.X, path=path)
    info["files"] = file_records(path)
    return check_names(adata, path=path, role="st"), info


def drop_controls(adata: ad.AnnData) -> tuple[ad.AnnData, list[str]]:
    """Features that are controls, not genes (:data:`CONTROL_PATTERN`, or a var ``feature_types`` other than gene expression)."""
    controls = np.array([bool(CONTROL_PATTERN.match(str(g))) for g in adata.var_names])
    for column in ("feature_types", "feature_type"):
        if column in adata.var.columns:
            controls |= ~adata.var[column].astype(str).str.lower().isin(["gene expression", "gene", "nan"]).to_numpy()
    dropped = list(map(str, adata.var_names[controls]))
    return (adata[:, ~controls].copy() if dropped else adata), dropped


def _read_instrument(path: Path, layout: str, *, bin_size: int) -> tuple[ad.AnnData, dict[str, Any]]:
    import spatialdata_io

    import spatialdata
    import spatialdata_io

    dataset_id = _dataset_id(path, layout)
    readers = {  # table only: no images, transcripts, boundaries or labels
        "spatialdata": lambda: spatialdata.read_zarr(path),
        "xenium": lambda: spatialdata_io.xenium(path, cells_table=True, cells_boundaries=False, nucleus_boundaries=False, cells_as_circles=False,
                                                cells_labels=False, nucleus_labels=False, morphology_mip=False, morphology_focus=False,
                                                aligned_images=False, gex_only=True, transcripts=False),
        "visium": lambda: spatialdata_io.visium(path, dataset_id=dataset_id),
        "visium_hd": lambda: spatialdata_io.visium_hd(path, dataset_id=dataset_id, bin_size=bin_size, load_segmentations_only=False,
                                                      load_all_images=False, annotate_table_by_labels=False),
        "merscope": lambda: spatialdata_io.merscope(path, cells_table=True, cells_boundaries=False, mosaic_images=False, transcripts=False),
        "cosmx": lambda: spatialdata_io.cosmx(path, dataset_id=dataset_id, transcripts=False),
    }
    reader = f"spatialdata.read_zarr {package_version('spatialdata')}" if layout == "spatialdata" else \
        f"spatialdata_io.{layout} {package_version('spatialdata-io')}"
    info: dict[str, Any] = {"layout": layout, "reader": reader}
    if layout == "visium_hd":
        info["bin_size_um"] = bin_size
    if layout in ("xenium", "merscope", "cosmx"):
        info["segmentation"] = "the instrument's cell segmentation (its cell x gene table)"
    try:
        sdata = readers[layout]()
    except InputError:
        raise
    except Exception as err:  # the readers raise many types for files that do not follow the layout
        needs = ", ".join(p.format(bin=bin_size) for p in SPATIAL_LAYOUTS[layout][1]) or "tables/"
        raise InputError(path, f"could not be read as a {layout} folder ({type(err).__name__}: {err})",
                         f"check that the files follow the {layout} layout (a table-only read needs: {needs})") from err
    table_name, adata = table_with_positions(sdata, path=path)
    attrs = sdata.tables[table_name].uns.get("spatialdata_attrs", {})
    region = attrs.get("region")
    info.update(table=table_name, region=region if isinstance(region, str) else (list(region)[0] if region is not None and len(region) == 1 else None),
                instance_key=attrs.get("instance_key"))
    return adata, info


def _dataset_id(path: Path, layout: str) -> str | None:
    """The ``<id>_`` prefix of the files that carry one (Visium counts, CosMx tables), else the folder's name."""
    pattern = {"visium": "*filtered_feature_bc_matrix.h5", "cosmx": "*exprMat_file.csv", "visium_hd": "*feature_slice.h5"}.get(layout)
    if pattern is None:
        return None
    for found in sorted(path.glob(pattern)):
        m = re.match(r"(.+?)_(filtered_feature_bc_matrix\.h5|exprMat_file\.csv|feature_slice\.h5)$", found.name)
        if m:
            return m.group(1)
    return path.name


def table_with_positions(sdata, *, path: Path) -> tuple[str, ad.AnnData]:
    """The SpatialData object's count table with each row's position in the global coordinate system in ``obsm["spatial"]``.

    Where the positions come from: :func:`_global_positions`.
    """
    if not sdata.tables:
        raise InputError(path, "the SpatialData object has no table", "write the count table into it (spatialdata TableModel)")
    name = "table" if "table" in sdata.tables else next(iter(sdata.tables))
    table = sdata.tables[name]
    adata = ad.AnnData(X=table.X, obs=table.obs.copy(), var=table.var.copy())
    coords = _global_positions(sdata, table)
    if coords is None:
        raise InputError(path, f"the table {name!r} has no positions (no obsm['spatial'] and no annotated shapes)",
                         "write the positions as the table's obsm['spatial'] or annotate a shapes element")
    adata.obsm["spatial"] = coords
    adata.obs_names = pd.Index(table.obs_names.astype(str), dtype=str)  # the readers' own ids: barcodes, cell ids, EntityIDs
    return name, adata


def _global_positions(sdata, table) -> np.ndarray | None:
    """``obsm["global"]`` (CosMx: the slide's pixels; its ``obsm["spatial"]`` are per-FOV), the
    annotated shapes' centroids in ``global``, or ``obsm["spatial"]`` (Visium: full-resolution
    pixels; Xenium, MERSCOPE: micrometres), in that order."""
    from spatialdata.transformations import get_transformation

    if "global" in table.obsm:
        return np.asarray(table.obsm["global"], dtype=float)[:, :2]
    attrs = table.uns.get("spatialdata_attrs", {})
    regions = attrs.get("region")
    regions = [regions] if isinstance(regions, str) else list(regions or [])
    shapes = [r for r in regions if r in sdata.shapes]
    placed = all("global" in _systems(sdata.shapes[r]) for r in shapes)
    if shapes and (placed or "spatial" not in table.obsm):  # else the table's own positions are the slide's (Visium: pixels)
        instance_key, region_key = attrs.get("instance_key"), attrs.get("region_key")
        out = np.full((table.n_obs, 2), np.nan)
        for region in shapes:
            element = sdata.shapes[region]
            centroids = np.column_stack([element.geometry.centroid.x, element.geometry.centroid.y])
            if "global" in _systems(element):
                centroids = _apply(get_transformation(element, to_coordinate_system="global"), centroids)
            lookup = pd.DataFrame(centroids, index=element.index.astype(str), columns=["x", "y"])
            rows = (table.obs[region_key].astype(str) == region).to_numpy() if region_key in table.obs else np.ones(table.n_obs, bool)
            ids = table.obs[instance_key].astype(str).to_numpy()[rows] if instance_key in table.obs else table.obs_names[rows]
            out[rows] = lookup.reindex(ids).to_numpy()
        if np.isfinite(out).all():
            return out
    if "spatial" in table.obsm:
        return np.asarray(table.obsm["spatial"], dtype=float)[:, :2]
    return None


def _systems(element) -> list[str]:
    from spatialdata.transformations import get_transformation

    return list(get_transformation(element, get_all=True))


def _apply(transform, xy: np.ndarray) -> np.ndarray:
    """An affine spatialdata transformation applied to (n, 2) points."""
    matrix = transform.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y"))
    return xy @ matrix[:2, :2].T + matrix[:2, 2]


def check_sizes(sc_data, st_data, *, sc_path=None, st_path=None) -> None:
    """Degenerate inputs that would "succeed" with every score NaN: too few spots or cells, one position for every spot."""
    if st_data.n_obs < MIN_SPOTS:
        raise InputError(st_path, f"the spatial data has {st_data.n_obs} spots; imputation and its scores need at least {MIN_SPOTS}",
                         "check that the whole sample was exported (not one field of view), or use another sample")
    if sc_data.n_obs < MIN_CELLS:
        raise InputError(sc_path, f"the reference has {sc_data.n_obs} cells; it needs at least {MIN_CELLS}",
                         "use the reference's full cell x gene matrix")
    xy = np.asarray(st_data.obsm["spatial"], dtype=float)
    if len(xy) and np.all(xy == xy[0]):
        raise InputError(st_path, "every spot has the same position", "give each spot its own coordinates (obsm['spatial'] or obs x/y)")


def check_gene_list(genes: list[str], sc_data, st_data, *, path=None) -> None:
    """A gene list must name at least one gene the reference has and the panel does not measure."""
    panel = set(map(str, st_data.var_names))
    known = [g for g in genes if g in set(map(str, sc_data.var_names))]
    imputable = [g for g in known if g not in panel]
    if not imputable:
        unknown, measured = len(genes) - len(known), len(known)
        raise InputError(path, f"no gene of the list can be imputed: {unknown} are not in the reference and {measured} are measured by the "
                               f"panel (e.g. {', '.join(genes[:3])})",
                         "list reference genes the ST panel did not measure, or leave the samplesheet's genes column empty to impute them all")


# --------------------------------------------------------------------------- gene identifiers
def match_gene_ids(sc_data: ad.AnnData, st_data: ad.AnnData, *, gene_symbols: str | None = None, sc_path=None, st_path=None) -> dict[str, Any]:
    """Name the reference's genes as the panel names them; the record of the mapping.

    Symbols match symbols. A reference indexed by Ensembl ids with a symbol column
    (:data:`SYMBOL_COLUMNS`, or ``gene_symbols``) is renamed through that column when it shares
    more genes with the panel that way (ids kept in ``var["gene_ids"]``). No gene in common is an
    :class:`InputError` showing both naming styles.
    """
    panel = set(map(str, st_data.var_names))
    by_name = len(panel & set(map(str, sc_data.var_names)))
    columns = [gene_symbols] if gene_symbols else [c for c in SYMBOL_COLUMNS if c in sc_data.var.columns]
    best, best_hits = None, by_name
    for column in columns:
        hits = len(panel & set(sc_data.var[column].astype(str)))
        if hits > best_hits or (gene_symbols and column == gene_symbols):
            best, best_hits = column, hits
    record: dict[str, Any] = {"matched_by": "var_names" if best is None else f'var["{best}"]', "shared_genes": best_hits}
    if best is not None:
        symbols = sc_data.var[best].astype(str).to_numpy()
        sc_data.var["gene_ids"] = sc_data.var_names.astype(str)
        sc_data.var_names = pd.Index(symbols, dtype=str)
        if not sc_data.var_names.is_unique:
            sc_data.var_names_make_unique()
        log.info("reference genes renamed through var[%r]: %d panel genes found", best, best_hits)
    missing = sorted(panel - set(map(str, sc_data.var_names)))
    record["panel_genes_not_in_reference"] = missing
    if best_hits == 0:
        raise InputError(st_path or sc_path, f"no gene in common: the panel names genes like {', '.join(sorted(panel)[:3])}, the reference like "
                                             f"{', '.join(map(str, sc_data.var_names[:3]))}"
                                             + (f" (its var columns: {', '.join(map(str, sc_data.var.columns[:6]))})" if len(sc_data.var.columns) else ""),
                         "use the same identifiers in both, or name the reference's symbol column with --gene-symbols")
    if missing:
        log.info("%d panel genes are not in the reference (e.g. %s)", len(missing), ", ".join(missing[:5]))
    return record


# --------------------------------------------------------------------------- SpatialData out
#: Above this many bytes of imputed values (mean and spread) the .zarr is not written: the table
#: is built in memory, while the .h5ad is written a block of genes at a time.
ZARR_MAX_BYTES = 2 * 1024**3


def spatial_region(st_data: ad.AnnData) -> tuple[str, str]:
    """The element and id column the input's own table annotated (import record), else ``spots`` / ``spot_id``."""
    record = st_data.uns.get("causalged", {}).get("import", {}).get("st", {})
    return str(record.get("region") or "spots"), str(record.get("instance_key") or "spot_id")


def write_spatialdata(h5ad: str | Path, path: str | Path, *, region: str = "spots", instance_key: str = "spot_id") -> Path | None:
    """``<sample>.imputed.zarr``: the imputed genes of ``h5ad`` (the impute step's result) as a SpatialData table annotating circles at the spots.

    The table (``tables["imputed"]``) holds ``X`` (mean), ``layers["std"]`` and the genes' ``var``
    (expected accuracy, trust); its ``obs[instance_key]`` are the input's own cell or spot ids and
    its region is named as the element the input's table annotated, so the table can be added to
    the input's SpatialData beside its images and shapes. Returns None (with a warning) above
    :data:`ZARR_MAX_BYTES`.
    """
    import spatialdata
    from spatialdata.models import ShapesModel, TableModel

    from causalged.io import atomic_write_folder

    backed = ad.read_h5ad(h5ad, backed="r")
    n_obs, n_vars = backed.shape
    backed.file.close()
    size = 2 * 4 * n_obs * n_vars  # mean and spread, float32
    if size > ZARR_MAX_BYTES:
        log.warning("%s not written: %d spots x %d genes need %.1f GB in memory (limit %.1f GB); the .h5ad holds every value",
                    path, n_obs, n_vars, size / 1e9, ZARR_MAX_BYTES / 1e9)
        return None
    imputed = ad.read_h5ad(h5ad)
    xy = np.asarray(imputed.obsm["spatial"], dtype=float)[:, :2]
    radius = _spot_radius(xy)
    # the input's own instance ids (Visium spot_id, Xenium cell_id, MERSCOPE EntityID), else the spot names
    instances = imputed.obs[instance_key].to_numpy() if instance_key in imputed.obs else None
    if instances is None or len(set(instances)) < len(instances):  # CosMx: cell ids repeat across FOVs; use the unique row names
        instances, instance_key = imputed.obs_names.astype(str).to_numpy(), "spot_id"
    circles = ShapesModel.parse(xy, geometry=0, radius=np.full(len(xy), radius), index=pd.Index(instances, name=instance_key))
    names = imputed.obs_names.astype(str)
    table = ad.AnnData(X=np.asarray(imputed.X, dtype=np.float32), obs=pd.DataFrame({"region": pd.Categorical([region] * imputed.n_obs),
                                                                                   instance_key: instances}, index=names),
                       var=imputed.var.copy(), layers={k: np.asarray(v, dtype=np.float32) for k, v in imputed.layers.items()})
    table.var = table.var.astype({c: str for c in table.var.columns if table.var[c].dtype == object})
    table = TableModel.parse(table, region=region, region_key="region", instance_key=instance_key)
    sdata = spatialdata.SpatialData(shapes={region: circles}, tables={"imputed": table})

    return atomic_write_folder(path, lambda tmp: sdata.write(tmp))


def _spot_radius(xy: np.ndarray) -> float:
    """Half the median distance to the nearest other spot (1 for a single spot)."""
    if len(xy) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    distances, _ = cKDTree(xy).query(xy, k=2)
    nearest = distances[:, 1]
    return float(np.median(nearest[nearest > 0]) / 2) if np.any(nearest > 0) else 1.0
