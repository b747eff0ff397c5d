"""Where a predicted gene sits on the ST scale: its mean and spread there, from its scRNA-seq ones.

Many imputers produce a per-gene *pattern* on another scale (an average of scRNA-seq values, a
z-score, a spot total). :class:`ScaleMap` turns such a pattern into ST log-normalized values
with the mean and spread the gene is expected to have in the ST data, learned from the training
genes only (a held-out gene's ST values are never read). The baselines (methods/) and the
diffusion model (model/) place their predictions the same way, so it lives at the top of the
package, below both.
"""

from __future__ import annotations

import numpy as np

from causalged.arrays import column_moments, zscore


class ScaleMap:
    """Per-gene ST mean and SD predicted from the gene's scRNA-seq mean and SD.

    Two least-squares lines in log space, ``log st_mean ~ log sc_mean`` and
    ``log st_sd ~ log sc_sd``, fitted across the training genes only. A held-out gene's
    pattern (z-scored) is then placed at its predicted ST mean and spread and clipped at 0,
    the floor of a log1p scale. Correlation-type metrics ignore this; SSIM and JS do not.
    """

    EPS = 1e-6

    def fit(self, sc_train: np.ndarray, st_train: np.ndarray) -> "ScaleMap":
        return self.fit_moments(*column_moments(sc_train), *column_moments(st_train))

    def fit_moments(self, sc_mean, sc_sd, st_mean, st_sd) -> "ScaleMap":
        """Fit from per-gene moments (for callers that never hold the whole matrices)."""
        self.mean_coef_ = _line(np.log(np.asarray(sc_mean) + self.EPS), np.log(np.asarray(st_mean) + self.EPS))
        self.sd_coef_ = _line(np.log(np.asarray(sc_sd) + self.EPS), np.log(np.asarray(st_sd) + self.EPS))
        return self

    def moments(self, sc_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_moments(*column_moments(sc_target))

    def predict_moments(self, sc_mean, sc_sd) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ST mean and SD of genes with these scRNA-seq moments."""
        mean = np.exp(np.polyval(self.mean_coef_, np.log(np.asarray(sc_mean) + self.EPS)))
        sd = np.exp(np.polyval(self.sd_coef_, np.log(np.asarray(sc_sd) + self.EPS)))
        return mean, sd

    @property
    def coef(self) -> np.ndarray:
        """(2, 2) array [mean line, SD line] for saving; :meth:`from_coef` restores it."""
        return np.vstack([self.mean_coef_, self.sd_coef_])

    @classmethod
    def from_coef(cls, coef: np.ndarray) -> "ScaleMap":
        scale = cls()
        scale.mean_coef_, scale.sd_coef_ = np.asarray(coef[0]), np.asarray(coef[1])
        return scale

    def to_st(self, pattern: np.ndarray, sc_target: np.ndarray | None = None, *, sc_moments: tuple | None = None) -> np.ndarray:
        """Spots x genes pattern (any scale) -> ST log-normalized scale; ``sc_moments`` (the
        targets' scRNA-seq mean and SD) instead of ``sc_target`` saves a pass over the cells."""
        mean, sd = self.moments(sc_target) if sc_moments is None else self.predict_moments(*sc_moments)
        return np.clip(zscore(pattern) * sd + mean, 0, None)


def _line(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slope and intercept of y ~ x; a flat line through the mean when x does not vary."""
    if len(x) < 2 or np.ptp(x) == 0:
        return np.array([0.0, float(np.mean(y))])
    return np.polyfit(x, y, 1)
