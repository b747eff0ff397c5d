"""CausalGeD: impute the genes a spatial panel did not measure, from a paired scRNA-seq reference."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("causalged")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["__version__"]
