"""Imputation methods behind one interface (:class:`~causalged.methods.base.Imputer`).

``get_imputer(name, **params)`` builds one by name. The default, ``knn_ridge_blend``, blends
k nearest cells with kernel ridge over genes, its weight chosen on training genes only; it is
the pipeline's default because it won under the held-out protocol (docs/benchmarks.md).
``causalged`` selects the paper-faithful diffusion model.
"""

from __future__ import annotations

from importlib import import_module

from causalged.methods.base import Imputer

DEFAULT_METHOD = "knn_ridge_blend"

_REGISTRY = {
    "knn_ridge_blend": ("causalged.methods.blend", "KnnRidgeBlendImputer"),
    "knn": ("causalged.methods.knn", "KNNImputer"),
    "kernel_ridge": ("causalged.methods.kernel_ridge", "KernelRidgeImputer"),
    "kernel_ridge_rbf": ("causalged.methods.kernel_ridge", "RBFKernelRidgeImputer"),
    "tangram": ("causalged.methods.tangram", "TangramImputer"),
    "spot_depth": ("causalged.methods.spot_depth", "SpotDepthImputer"),
    "causalged": ("causalged.methods.diffusion", "CausalGeDImputer"),
    "causalged_nomask": ("causalged.methods.diffusion", "CausalGeDNoMaskImputer"),
}
#: Every method name, the default first.
METHODS = tuple(_REGISTRY)
#: Methods that train the diffusion model (slow on CPU).
MODEL_METHODS = ("causalged", "causalged_nomask")


def get_imputer(name: str, **params) -> Imputer:
    """A fresh, unfitted imputer; ``params`` are the method's keyword arguments."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown imputation method {name!r}; choose one of: {', '.join(METHODS)}")
    module, cls = _REGISTRY[name]
    return getattr(import_module(module), cls)(**params)


__all__ = ["DEFAULT_METHOD", "METHODS", "MODEL_METHODS", "Imputer", "get_imputer"]
