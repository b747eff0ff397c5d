"""CausalGeD: impute the genes a spatial panel did not measure, from a paired scRNA-seq reference.

Python API (scanpy style; the same code the pipeline's steps run):

- :func:`causalged.impute` (``sc``, ``st`` AnnData -> spots x imputed genes, ``layers["std"]``,
  ``var["expected_pcc"]`` when cross-validated);
- :func:`causalged.crossvalidate` (held-out-gene scores of methods on the panel genes);
- :mod:`causalged.pp`: ``qc``, ``normalize``, ``select_genes``;
- :func:`causalged.read_spatial` (instrument folders, SpatialData, .h5ad) and
  :func:`causalged.read_reference` (.h5ad, CELLxGENE, Cell Ranger, .loom): data as people have it.

Submodules load on first use, so ``import causalged`` (and the command line) starts fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("causalged")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

_LAZY = {"impute": ("causalged.api", "impute"), "crossvalidate": ("causalged.api", "crossvalidate"), "pp": ("causalged.pp", None),
         "read_spatial": ("causalged.api", "read_spatial"), "read_reference": ("causalged.api", "read_reference")}


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        loaded = import_module(module)
        return loaded if attribute is None else getattr(loaded, attribute)
    raise AttributeError(f"module 'causalged' has no attribute {name!r}")


__all__ = ["__version__", "crossvalidate", "impute", "pp", "read_reference", "read_spatial"]
