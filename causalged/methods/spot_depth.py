"""The "spot depth" floor: every held-out gene predicted as the spot's total count.

No biology at all: each spot's raw total over the training genes, placed on each target
gene's expected ST scale. Against raw counts it still scores well wherever spot size drives
expression, so it is reported beside every raw-count score to show how much of that score is
spot size.
"""

from __future__ import annotations

import numpy as np

from causalged.methods.base import Imputer


class SpotDepthImputer(Imputer):
    name = "spot_depth"
    needs_counts = True

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        self.depth_ = st_counts.sum(axis=1)
        self.info_ = {"depth": "raw total of the training genes per spot"}

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return np.repeat(self.depth_[:, None], sc_target.shape[1], axis=1)
