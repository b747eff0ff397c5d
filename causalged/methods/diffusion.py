"""Adapters that make :class:`causalged.model.CausalGeD` an Imputer.

``causalged`` is the paper-faithful model (causal attention mask, autoregressive groups);
``causalged_nomask`` is the same network with the mask and AR groups off, a plain conditional
diffusion transformer like SpaDiT. The model generates ST vectors directly, so its output is
already on the ST scale; its diffusion samples are the uncertainty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from causalged.methods.base import Imputer, as_dense


class CausalGeDImputer(Imputer):
    name = "causalged"
    causal_mask = True

    def __init__(self, *, preset: str = "cpu", epochs: int | None = None, device: str = "auto", seed: int = 0,
                 n_samples: int = 8, sampler: str = "ddim", steps: int = 50, **overrides: Any):
        super().__init__(preset=preset, epochs=epochs, device=device, seed=seed, n_samples=n_samples, sampler=sampler, steps=steps, **overrides)

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        from causalged.model import CausalGeD

        p = dict(self.params)
        fixed = {key: p.pop(key) for key in ("preset", "epochs", "device", "seed", "n_samples", "sampler", "steps")}
        self.model_ = CausalGeD(n_spots=st_train.shape[0], n_cells=sc_train.shape[0], preset=fixed["preset"], causal_mask=self.causal_mask, **p)
        history = self.model_.train(sc_train, st_train, epochs=fixed["epochs"], device=fixed["device"], seed=fixed["seed"], progress=False)
        self.info_ = {**{k: v for k, v in self.params.items() if v is not None}, "causal_mask": self.causal_mask, "epochs_run": int(len(history))}

    def _impute(self, sc_target, *, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return self.model_.impute(as_dense(sc_target), n_samples=n_samples, sampler=self.params["sampler"], steps=self.params["steps"], seed=seed)

    def predict(self, sc_target) -> np.ndarray:
        mean, _ = self._impute(sc_target, n_samples=self.params["n_samples"], seed=self.params["seed"])
        return np.clip(np.asarray(mean, dtype=np.float32), 0, None)

    def predict_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> np.ndarray:
        _, samples = self._impute(sc_target, n_samples=n_samples, seed=seed)
        return np.asarray(samples, dtype=np.float32)

    def predict_with_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        mean, samples = self._impute(sc_target, n_samples=n_samples, seed=seed)
        return np.clip(np.asarray(mean, dtype=np.float32), 0, None), np.asarray(samples, dtype=np.float32)


class CausalGeDNoMaskImputer(CausalGeDImputer):
    name = "causalged_nomask"
    causal_mask = False
