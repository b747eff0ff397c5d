"""The common Imputer interface: fit on training genes, predict targets, place them on the ST scale.

Array conventions (contract): ``sc_*`` are cells x genes, ``st_*`` spots x genes, both
log-normalized; predictions are spots x target genes on the ST log-normalized scale.
Methods whose natural output is on another scale (an average of scRNA-seq values, a z-score,
a spot total) go through :class:`~causalged.scale.ScaleMap`, fitted on the training genes
only, which turns a per-gene pattern into ST values with the mean and spread the gene is
expected to have there.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from causalged.arrays import as_dense, column_moments
from causalged.errors import InputError
from causalged.limits import size_limit
from causalged.metacells import metacell_groups, pooling_matrix
from causalged.scale import ScaleMap

#: Reference cells a method fits on as they are. Above it the reference is pooled into this many
#: metacells (:mod:`causalged.metacells`) before anything is densified, so a fit's memory and time
#: stop growing with the atlas: 10^6 cells x 5,000 panel genes would be 40 GB dense; 5 x 10^4
#: metacells are 2 GB. The environment variable :data:`FIT_CELLS_VARIABLE` changes it.
MAX_FIT_CELLS = 50_000
FIT_CELLS_VARIABLE = "CAUSALGED_MAX_FIT_CELLS"

log = logging.getLogger(__name__)


def max_fit_cells() -> int:
    """The metacell limit in force (:data:`MAX_FIT_CELLS`, or :data:`FIT_CELLS_VARIABLE`)."""
    return size_limit(FIT_CELLS_VARIABLE, MAX_FIT_CELLS, least=2, meaning="the most reference cells a fit may use unpooled")


class Imputer:
    """Base class: ``fit`` on the training genes, ``predict`` held-out or target genes.

    Subclasses implement ``_fit`` and ``_pattern`` (spots x targets, any per-gene scale); the
    base class places the pattern on the ST scale with :class:`ScaleMap` and gives
    ``predict_samples`` by bootstrap over the training genes (refit on genes drawn with
    replacement, hyper-parameters kept), which is the spread of a deterministic method.
    ``info_`` records what the fit chose (hyper-parameters, blend weight), for outputs.
    """

    name = "base"
    #: whether ``fit`` needs the raw ST counts of the training genes (``st_counts=``).
    needs_counts = False
    #: whether a reference above :func:`max_fit_cells` is pooled into metacells before the fit
    #: (the diffusion models pool to their own, smaller, width).
    pools_reference = True

    def __init__(self, **params: Any):
        self.params = params
        self.info_: dict[str, Any] = {}

    def fit(self, sc_train, st_train, *, sc_target=None, st_counts=None, st_coords=None) -> "Imputer":
        """Learn from the training genes. ``sc_target`` (cells x targets) lets a transductive
        method see the genes it will predict (only their scRNA-seq vectors, never ST values);
        ``st_coords`` (spots x 2) lets a method borrow from spatial neighbours."""
        self.cell_pool_ = self._cell_pool(sc_train)
        sc_train, st_train = self.reference(sc_train), as_dense(st_train)
        if sc_train.shape[1] != st_train.shape[1]:
            raise ValueError(f"sc_train has {sc_train.shape[1]} genes but st_train has {st_train.shape[1]}")
        if sc_train.shape[1] < 2:
            raise ValueError("at least 2 training genes are needed")
        if self.needs_counts and st_counts is None:
            raise ValueError(f"method {self.name!r} needs st_counts (raw ST counts of the training genes)")
        if st_coords is not None and len(st_coords) != st_train.shape[0]:
            raise ValueError(f"st_coords has {len(st_coords)} rows but st_train has {st_train.shape[0]} spots")
        self.st_coords_ = None if st_coords is None else np.asarray(st_coords, dtype=float)
        # counts are densified only for a method that reads them (at 10^5 spots x 5,000 genes a dense copy is 4 GB)
        self._fit_args = (sc_train, st_train, as_dense(st_counts) if self.needs_counts else None)
        self.train_moments_ = (*column_moments(sc_train), *column_moments(st_train))  # sc mean, sc SD, ST mean, ST SD per gene
        self.scale_ = ScaleMap().fit_moments(*self.train_moments_)
        self._fit(sc_train, st_train, st_counts=self._fit_args[2], sc_target=None if sc_target is None else self.reference(sc_target))
        if self.pooling_:
            self.info_["reference_pooled"] = self.pooling_
        return self

    def _cell_pool(self, sc_train):
        """The (metacells, cells) averaging matrix above the size limit, else None; recorded in ``pooling_``."""
        limit, n_cells = max_fit_cells(), sc_train.shape[0]
        groups = metacell_groups(sc_train, limit, seed=int(self.params.get("seed") or 0)) if self.pools_reference else None
        self.pooling_ = None if groups is None else {"cells": int(n_cells), "metacells": int(limit), "limit_variable": FIT_CELLS_VARIABLE}
        if groups is None:
            return None
        log.info("%s: %d reference cells pooled into %d metacells before the fit (limit: %s)", self.name, n_cells, limit, FIT_CELLS_VARIABLE)
        return pooling_matrix(groups, limit)

    def reference(self, sc) -> np.ndarray:
        """Cells x genes as the fit sees them: pooled into the fit's metacells above the size
        limit (sparse input stays sparse until then), dense float64. Every ``sc_target`` goes
        through it; one with a row per metacell is pooled already (``pool @ cells``, taken a block
        of cells at a time by `causalged impute` from a reference on disk) and is used as it is."""
        pool = getattr(self, "cell_pool_", None)
        return as_dense(sc if pool is None or sc.shape[0] == pool.shape[0] else pool @ sc)

    def predict(self, sc_target) -> np.ndarray:
        sc_target = self.reference(sc_target)
        return self.scale_.to_st(self._pattern(sc_target), sc_target).astype(np.float32)

    def predict_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> np.ndarray:
        """Bootstrap over training genes: n_samples x spots x targets."""
        sc_train, st_train, st_counts = self._fit_args  # the reference as the fit saw it (pooled above the limit)
        sc_target = self.reference(sc_target)
        rng = np.random.default_rng(seed)
        n_genes = sc_train.shape[1]
        out = []
        for _ in range(n_samples):
            pick = rng.choice(n_genes, size=n_genes, replace=True)
            clone = self._bootstrap_clone()
            clone.fit(sc_train[:, pick], st_train[:, pick], st_counts=None if st_counts is None else st_counts[:, pick])
            out.append(clone.predict(sc_target))
        return np.stack(out)

    def predict_with_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, samples) in one call; a sampling model overrides it to sample once."""
        return self.predict(sc_target), self.predict_samples(sc_target, n_samples=n_samples, seed=seed)

    def _bootstrap_clone(self) -> "Imputer":
        """A fresh copy for one bootstrap refit; subclasses pin the hyper-parameters they chose."""
        return type(self)(**copy.deepcopy(self.params))

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        raise NotImplementedError

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"
