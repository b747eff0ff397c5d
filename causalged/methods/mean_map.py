"""The gene-independent floor: one spatial map for every held-out gene.

Each training gene's ST vector is z-scored and the z-scores are averaged into one map (the
tissue's dominant pattern); every target gene gets that same map, placed on its own expected
ST mean and spread by :class:`~causalged.scale.ScaleMap`. It knows nothing about the
target gene beyond its scale, so a learned method that does not beat it has learned nothing
gene-specific.
"""

from __future__ import annotations

import numpy as np

from causalged.arrays import zscore
from causalged.methods.base import Imputer


class MeanMapImputer(Imputer):
    name = "mean_map"

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        self.map_ = zscore(st_train, axis=0).mean(axis=1)
        self.info_ = {"map": "mean z-scored ST map of the training genes"}

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return np.repeat(self.map_[:, None], sc_target.shape[1], axis=1)
