"""Adapters that make :class:`causalged.model.CausalGeD` an Imputer, one per design.

- ``causalged``: the paper's design, sampled in one group as the public code does;
- ``causalged_ar``: the same trained model, sampled group by group as the paper describes
  (cross-validation fits it once and samples it both ways, see :meth:`training_key`);
- ``causalged_nomask``: mask and AR groups off, a plain conditional diffusion transformer
  (SpaDiT's design);
- ``causalged_plus``: the faithful model plus our additions, evaluated beside it.

The model generates ST vectors directly, so its output is already on the ST scale and its
diffusion samples are the uncertainty. Every spot is an input and output unit of the model, so
above :data:`MAX_MODEL_SPOTS` spots (``CAUSALGED_MAX_MODEL_SPOTS``) training refuses with an
:class:`InputError` (:func:`check_model_size`) instead of running for hours or out of memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from causalged.errors import InputError
from causalged.limits import size_limit
from causalged.arrays import as_dense
from causalged.methods.base import Imputer

#: Spots the diffusion models train on without being asked: 5 x the osmFISH pair's 3,405.
MAX_MODEL_SPOTS = 20_000
MODEL_SPOTS_VARIABLE = "CAUSALGED_MAX_MODEL_SPOTS"


def check_model_size(n_spots: int) -> None:
    """Refuse a diffusion model over more spots than the limit, naming the limit and how to change it."""
    limit = size_limit(MODEL_SPOTS_VARIABLE, MAX_MODEL_SPOTS, meaning="the most spots a diffusion model may take")
    if n_spots > limit:
        raise InputError(None, f"the diffusion models (causalged*) take every spot as a model input and output, and {n_spots:,} spots "
                               f"are above their limit of {limit:,}",
                         f"raise it with the environment variable {MODEL_SPOTS_VARIABLE} (time and memory grow with the spots; "
                         "use a GPU), or use --method knn_ridge_blend and --eval-methods fast")

#: Keyword arguments that change how a trained model is sampled, not how it is trained.
INFERENCE_PARAMS = ("n_samples", "sampler", "steps", "mode")


class CausalGeDImputer(Imputer):
    name = "causalged"
    #: the design trained (a key of ``model.wrapper.METHOD_SWITCHES``)
    design = "causalged"
    default_mode = "one_group"
    pools_reference = False  # the model pools to its preset's max_cells itself

    def __init__(self, *, preset: str = "cpu", epochs: int | None = None, device: str = "auto", seed: int = 0,
                 n_samples: int = 8, sampler: str = "ddim", steps: int | None = 50, mode: str | None = None, **overrides: Any):
        super().__init__(preset=preset, epochs=epochs, device=device, seed=seed, n_samples=n_samples, sampler=sampler, steps=steps,
                         mode=mode or self.default_mode, **overrides)

    def training_key(self) -> tuple:
        """Imputers with equal keys train the same model: one fit can serve them all."""
        return (self.design, tuple(sorted((k, repr(v)) for k, v in self.params.items() if k not in INFERENCE_PARAMS)))

    def adopt_fit(self, fitted: "CausalGeDImputer") -> "CausalGeDImputer":
        """Use another imputer's trained model (same :meth:`training_key`) with this one's sampling."""
        if fitted.training_key() != self.training_key():
            raise ValueError(f"{fitted.name} and {self.name} do not train the same model")
        self.model_, self.scale_, self._fit_args = fitted.model_, fitted.scale_, fitted._fit_args
        self.info_ = {**fitted.info_, **{k: self.params[k] for k in INFERENCE_PARAMS}, "fit_shared_with": fitted.name}
        return self

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        from causalged.model import CausalGeD

        check_model_size(st_train.shape[0])
        p = dict(self.params)
        fixed = {key: p.pop(key) for key in ("preset", "epochs", "device", "seed", *INFERENCE_PARAMS)}
        self.model_ = CausalGeD(n_spots=st_train.shape[0], n_cells=sc_train.shape[0], method=self.design, preset=fixed["preset"], **p)
        history = self.model_.train(sc_train, st_train, epochs=fixed["epochs"], device=fixed["device"], seed=fixed["seed"], progress=False)
        info = self.model_.train_info
        self.info_ = {**{k: v for k, v in self.params.items() if v is not None}, "design": self.design, "faithful": self.model_.faithful,
                      "causal_mask": self.model_.config["causal_mask"], "epochs_run": int(len(history)),
                      "best_epoch": info.get("best_epoch"), "best_val_pcc": info.get("best_val_pcc"),
                      "curve": {"epoch": history["epoch"].to_numpy(dtype=float), "train_loss": history["train_loss"].to_numpy(dtype=float),
                                "val_pcc": history["val_pcc"].to_numpy(dtype=float), "best_epoch": float(info.get("best_epoch") or np.nan)}}

    def _impute(self, sc_target, *, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        out = self.model_.impute(as_dense(sc_target), n_samples=n_samples, sampler=p["sampler"], steps=p["steps"], mode=p["mode"], seed=seed)
        self.info_["clipped_fraction"] = self.model_.sampling_info["clipped_fraction"]
        return out

    def predict(self, sc_target) -> np.ndarray:
        mean, _ = self._impute(sc_target, n_samples=self.params["n_samples"], seed=self.params["seed"])
        return np.clip(np.asarray(mean, dtype=np.float32), 0, None)

    def predict_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> np.ndarray:
        _, samples = self._impute(sc_target, n_samples=n_samples, seed=seed)
        return np.asarray(samples, dtype=np.float32)

    def predict_with_samples(self, sc_target, *, n_samples: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        mean, samples = self._impute(sc_target, n_samples=n_samples, seed=seed)
        return np.clip(np.asarray(mean, dtype=np.float32), 0, None), np.asarray(samples, dtype=np.float32)


class CausalGeDAutoregressiveImputer(CausalGeDImputer):
    name = "causalged_ar"
    default_mode = "autoregressive"


class CausalGeDNoMaskImputer(CausalGeDImputer):
    name = "causalged_nomask"
    design = "causalged_nomask"


class CausalGeDPlusImputer(CausalGeDImputer):
    name = "causalged_plus"
    design = "causalged_plus"
