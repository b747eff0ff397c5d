"""Imputation methods behind one interface (:class:`~causalged.methods.base.Imputer`).

``get_imputer(name, **params)`` builds one by name. The default, ``knn_ridge_blend``, blends
k nearest cells with kernel ridge over genes, its weight chosen on training genes only; it is
the pipeline's default because it won under the held-out protocol (docs/benchmarks.md).
``causalged`` is the paper's diffusion model as published (faithful; sampled in one group),
``causalged_ar`` the same model sampled group by group, ``causalged_nomask`` its no-mask
twin (SpaDiT's design) and ``causalged_plus`` the faithful model plus our additions
(methods/diffusion.py). ``mean_map`` and ``spot_depth`` are floors with no gene-specific
knowledge: every learned method is judged against them.
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
    "mean_map": ("causalged.methods.mean_map", "MeanMapImputer"),
    "causalged": ("causalged.methods.diffusion", "CausalGeDImputer"),
    "causalged_ar": ("causalged.methods.diffusion", "CausalGeDAutoregressiveImputer"),
    "causalged_nomask": ("causalged.methods.diffusion", "CausalGeDNoMaskImputer"),
    "causalged_plus": ("causalged.methods.diffusion", "CausalGeDPlusImputer"),
}
#: Every method name, the default first.
METHODS = tuple(_REGISTRY)
#: Methods that train the diffusion model (slow on CPU).
MODEL_METHODS = ("causalged", "causalged_ar", "causalged_nomask", "causalged_plus")
#: Floors with no gene-specific knowledge (a learned method must beat them).
FLOOR_METHODS = ("mean_map", "spot_depth")
#: Named method sets for ``--eval-methods``. The default, ``fast``, cross-validates the osmFISH
#: pair in minutes on 2 CPU cores; ``full`` adds the two costly ones (the Tangram-style map and
#: the diffusion model: the set compared before issue 11, about an hour there); ``all`` is every method.
METHOD_SETS = {
    "fast": ("knn_ridge_blend", "knn", "kernel_ridge", "spot_depth", "mean_map"),
    "full": ("knn_ridge_blend", "knn", "kernel_ridge", "tangram", "spot_depth", "mean_map", "causalged"),
    "all": METHODS,
}
DEFAULT_EVAL_METHODS = ",".join(METHOD_SETS["fast"])


def get_imputer(name: str, **params) -> Imputer:
    """A fresh, unfitted imputer; ``params`` are the method's keyword arguments."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown imputation method {name!r}; choose one of: {', '.join(METHODS)}")
    module, cls = _REGISTRY[name]
    return getattr(import_module(module), cls)(**params)


def parse_methods(text: str | Sequence[str] | None) -> list[str]:
    """Comma-separated method names (default: every registered method), checked; a set name
    (``fast``, ``full``, ``all``: ``methods.METHOD_SETS``) stands for its methods."""
    from causalged.errors import InputError

    if text is None or text == "":
        return list(METHODS)
    given = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    names = [name for m in given for name in METHOD_SETS.get(m, (m,))]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise InputError(None, f"unknown method(s) {', '.join(unknown)}",
                         f"choose from {', '.join(METHODS)} or a set: {', '.join(METHOD_SETS)}")
    return list(dict.fromkeys(names))


__all__ = ["DEFAULT_EVAL_METHODS", "DEFAULT_METHOD", "FLOOR_METHODS", "METHODS", "METHOD_SETS", "MODEL_METHODS", "Imputer", "get_imputer", "parse_methods"]
