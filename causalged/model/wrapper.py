"""``CausalGeD``: the user-facing model (scvi-tools style: network, training loop and wrapper apart).

Arrays follow the package convention: ``sc_*`` are cells x genes (dense or CSR), ``st_*`` are
spots x genes, both log-normalized, the same genes in the same order. Genes are the model's
samples: it learns to generate a gene's vector over the spots from its vector over the cells.

Designs (``method``, :data:`METHOD_SWITCHES`): ``causalged`` is the paper's design,
``causalged_nomask`` the same without the causal mask (SpaDiT's), ``causalged_plus`` the
paper's design plus our two additions; every addition is a named switch, off unless asked for.
Presets (:data:`PRESETS`): ``cpu`` (default, small, early-stopped) and ``paper`` (the paper's
architecture); both faithful, and any key can be overridden as a keyword argument.

Inputs are z-scored per gene, so the model learns spatial patterns rather than expression
levels; a gene's ST mean and spread are put back by :class:`causalged.scale.ScaleMap`, as for
the baselines; imputed values are clipped at 0. A large reference is pooled into metacells, so
the model grows with the spots, not the cells. Preset sizes and their history:
docs/method-notes.md.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from causalged.device import resolve_device
from causalged.io import atomic_write, write_csv_atomic, write_json_atomic
from causalged.metacells import metacell_groups
from causalged.model.data import check_shapes, genes_by_cells, genes_by_spots, standardize_genes
from causalged.model.module import CausalGeDModule
from causalged.model.training import CHECKPOINT_NAME, GeneSet, TrainSettings, auto_batch_size, fit
from causalged.scale import ScaleMap

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.pt"
CONFIG_NAME = "config.json"
LOG_NAME = "training_log.csv"
REFIT_LOG_NAME = "refit_log.csv"

_ARCHITECTURE = ("latent_dim", "n_tokens", "n_cond", "hidden", "depth", "heads", "enc_hidden", "n_timesteps", "ar_decay", "aligned_condition",
                 "cross_reconstruction", "prediction", "variational", "ar_loss_weights", "huber_weight", "kl_weight")
_TRAINING = ("epochs", "batch_size", "lr", "weight_decay", "warmup_fraction", "min_lr_fraction", "joint_decoder", "ae_fraction",
             "patience", "checkpoint_every", "min_steps_per_epoch", "val_every", "val_samples", "val_steps")

#: What every preset shares: the paper's design (method.md section 3) with sound sampling.
_FAITHFUL = {
    "causal_mask": True, "aligned_condition": False, "cross_reconstruction": False, "joint_decoder": False, "variational": True,
    "ar_decay": 0.8, "n_timesteps": 2000, "prediction": "v", "ar_loss_weights": False, "huber_weight": 1.0, "kl_weight": 1e-3,
    "validation_fraction": 0.2, "val_samples": 4, "val_steps": 20,
}
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        **_FAITHFUL, "latent_dim": 64, "n_tokens": 16, "n_cond": 8, "hidden": 64, "depth": 3, "heads": 4, "enc_hidden": 256,
        "max_cells": 256, "epochs": 300, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "warmup_fraction": 0.05,
        "min_lr_fraction": 0.1, "ae_fraction": 0.2, "patience": 20, "checkpoint_every": 50, "min_steps_per_epoch": 5, "val_every": 5,
    },
    "paper": {
        **_FAITHFUL, "latent_dim": 256, "n_tokens": 256, "n_cond": 64, "hidden": 1024, "depth": 4, "heads": 16, "enc_hidden": 1024,
        "max_cells": 10_000, "epochs": 4000, "batch_size": 64, "lr": 1e-4, "weight_decay": 1e-4, "warmup_fraction": 0.02,
        "min_lr_fraction": 0.1, "ae_fraction": 0.2, "patience": 400, "checkpoint_every": 100, "min_steps_per_epoch": 10, "val_every": 10,
    },
}
#: The models by method name: switches applied on top of a preset. ``causalged`` is the paper's
#: design; ``causalged_nomask`` the same without the causal mask and AR groups (SpaDiT's
#: design); ``causalged_plus`` adds our two parts, the aligned condition path (model/cat.py)
#: and the cross-modal reconstruction loss (model/module.py).
METHOD_SWITCHES: dict[str, dict[str, Any]] = {
    "causalged": {},
    "causalged_nomask": {"causal_mask": False},
    "causalged_plus": {"aligned_condition": True, "cross_reconstruction": True},
}


def _best_validated(history: pd.DataFrame) -> pd.Series | None:
    """The epoch early stopping kept: the highest validation PCC outside the autoencoder phase."""
    scored = history[(history["phase"] != "autoencoder") & history["val_pcc"].notna()]
    return scored.loc[scored["val_pcc"].idxmax()] if len(scored) else None


class CausalGeD:
    """Impute unmeasured spatial genes with the causality-aware latent diffusion model.

    ``method`` picks the design (:data:`METHOD_SWITCHES`), ``preset`` the size and training
    budget; any preset key can be overridden by keyword.
    """

    def __init__(self, n_spots: int, n_cells: int, *, method: str = "causalged", preset: str = "cpu", **overrides):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        if method not in METHOD_SWITCHES:
            raise ValueError(f"unknown CausalGeD method {method!r}; choose one of {sorted(METHOD_SWITCHES)}")
        unknown = sorted(set(overrides) - set(PRESETS[preset]))
        if unknown:
            raise TypeError(f"unknown CausalGeD option(s) {unknown}; valid: {sorted(PRESETS[preset])}")
        self.config: dict[str, Any] = {"n_spots": int(n_spots), "n_cells": int(n_cells), "preset": preset, "method": method,
                                       **PRESETS[preset], **METHOD_SWITCHES[method], **overrides}
        self.n_columns = min(self.config["n_cells"], self.config["max_cells"])  # width of the e2 head
        self.module = self._build()
        self.cell_groups: np.ndarray | None = None
        self.levels: ScaleMap | None = None  # a gene's ST mean / SD from its scRNA-seq mean / SD
        self.history: pd.DataFrame | None = None  # one row per epoch of the validated run
        self.refit_history: pd.DataFrame | None = None  # the refit on all genes, when train(refit=True)
        self.train_info: dict[str, Any] = {}
        self.data_info: dict[str, Any] = {}  # free-form record saved with the model (the CLI stores gene lists here)
        self.sampling_info: dict[str, Any] = {}  # settings and clipped fraction of the last impute()

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def faithful(self) -> bool:
        """Whether every switch is the paper's (the causal mask may be off: SpaDiT's design)."""
        cfg = self.config
        return not (cfg["aligned_condition"] or cfg["cross_reconstruction"])

    @property
    def is_trained(self) -> bool:
        return bool(self.train_info)

    def _build(self) -> CausalGeDModule:
        cfg = self.config
        return CausalGeDModule(n_spots=cfg["n_spots"], n_cells=self.n_columns, causal=cfg["causal_mask"], **{k: cfg[k] for k in _ARCHITECTURE})

    def __repr__(self) -> str:
        n_params = sum(p.numel() for p in self.module.parameters())
        return (f"CausalGeD(method={self.method}, preset={self.config['preset']}, n_spots={self.config['n_spots']}, "
                f"n_cells={self.config['n_cells']} (e2 width {self.n_columns}), parameters={n_params:,}, trained={self.is_trained})")

    def _gene_set(self, sc_matrix, st_matrix) -> tuple[GeneSet, tuple[np.ndarray, ...]]:
        """Z-scored gene-major tensors, and the levels (sc mean, sc std, st mean, st std) per gene."""
        check_shapes(sc_matrix, st_matrix, n_cells=self.config["n_cells"], n_spots=self.config["n_spots"])
        z_st, st_mean, st_std = standardize_genes(genes_by_spots(st_matrix))
        z_sc, sc_mean, sc_std = standardize_genes(genes_by_cells(sc_matrix, self.cell_groups, self.n_columns))
        return GeneSet(torch.from_numpy(z_st), torch.from_numpy(z_sc)), (sc_mean, sc_std, st_mean, st_std)

    # ------------------------------------------------------------------ training
    def train(
        self,
        sc_train,
        st_train,
        *,
        sc_val=None,
        st_val=None,
        epochs: int | None = None,
        device: str = "auto",
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        seed: int = 0,
        progress: bool = True,
        refit: bool = False,
    ) -> pd.DataFrame:
        """Fit on the training genes; select and early-stop on the validation genes.

        Without ``sc_val``/``st_val``, a seeded ``validation_fraction`` of the training genes
        (config; 0 turns it off) is held out for that, as scvi-tools does. ``refit=True``
        (production, where every measured gene should count) then trains a fresh model on all
        the given genes, validation genes included, for the epochs the validation chose;
        ``history`` is the validated run's, ``refit_history`` the refit's.
        Training starts from a fresh initialisation seeded by ``seed``, unless ``resume`` finds
        ``checkpoint_dir/last.pt``, in which case it continues from there. Returns the history
        (one row per epoch: phase, train_loss, val_loss, lr, seconds).
        """
        cfg = self.config
        device_used = resolve_device(device)
        if sc_train.shape[1] < 1:
            raise ValueError("no training genes given")
        if sc_val is None and st_val is None and cfg["validation_fraction"] > 0 and sc_train.shape[1] >= 10:
            order = np.random.default_rng(seed).permutation(sc_train.shape[1])
            n_val = max(2, round(cfg["validation_fraction"] * sc_train.shape[1]))
            held, kept = np.sort(order[:n_val]), np.sort(order[n_val:])
            sc_val, st_val, sc_train, st_train = sc_train[:, held], st_train[:, held], sc_train[:, kept], st_train[:, kept]
        self.cell_groups = metacell_groups(sc_train, self.n_columns, seed=seed)
        train, levels = self._gene_set(sc_train, st_train)
        self.levels = ScaleMap().fit_moments(*levels)
        val = self._gene_set(sc_val, st_val)[0] if sc_val is not None and st_val is not None and sc_val.shape[1] else None
        has_checkpoint = resume and checkpoint_dir is not None and (Path(checkpoint_dir) / CHECKPOINT_NAME).exists()
        if not has_checkpoint:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.module = self._build()
        settings = TrainSettings(
            epochs=int(epochs if epochs is not None else cfg["epochs"]),
            batch_size=auto_batch_size(self.module, cfg["batch_size"], train.st.shape[0], device_used),
            checkpoint_every=int(checkpoint_every if checkpoint_every is not None else cfg["checkpoint_every"]),
            **{k: cfg[k] for k in _TRAINING if k not in ("epochs", "batch_size", "checkpoint_every")},
        )
        began = time.perf_counter()
        history = fit(self.module, train, val, settings=settings, device=device_used, seed=seed,
                      checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
        self.history = pd.DataFrame(history)
        best = _best_validated(self.history)
        self.refit_history = None
        if refit and val is not None:
            self._refit_all(int(best["epoch"]) if best is not None else len(self.history), settings, (sc_train, sc_val), (st_train, st_val),
                            device_used, seed, checkpoint_dir, resume, progress)
        diffusion_rows = self.history[self.history["phase"] != "autoencoder"]
        self.train_info = {
            "device": str(device_used),
            "device_name": torch.cuda.get_device_name(device_used) if device_used.type == "cuda" else "cpu",
            "mixed_precision": device_used.type == "cuda",
            "torch_version": torch.__version__,
            "seed": seed,
            "batch_size": settings.batch_size,
            "epochs_planned": settings.epochs,
            "epochs_run": len(self.history),
            "stopped_early": len(self.history) < settings.epochs,
            "best_val_loss": float(diffusion_rows["val_loss"].min()) if len(diffusion_rows) else float("nan"),
            "best_val_pcc": float(best["val_pcc"]) if best is not None else float("nan"),
            "best_epoch": int(best["epoch"]) if best is not None else None,
            "clipped_fraction_at_best": float(best["clipped_fraction"]) if best is not None else None,
            "n_train_genes": int(train.st.shape[0]),
            "n_val_genes": int(val.st.shape[0]) if val is not None else 0,
            "refit_on_all_genes_epochs": None if self.refit_history is None else len(self.refit_history),
            "metacells": self.cell_groups is not None,
            "seconds_this_call": time.perf_counter() - began,
        }
        return self.history

    def _refit_all(self, best, settings, sc_parts, st_parts, device, seed, checkpoint_dir, resume, progress) -> None:
        """Train a fresh model on training + validation genes for the ``best`` epochs the validation chose.

        Same autoencoder epochs, then as many diffusion epochs as the best validated model had.
        """
        n_ae = int((self.history["phase"] == "autoencoder").sum())
        sc_all = sp.hstack(sc_parts, format="csr") if any(sp.issparse(p) for p in sc_parts) else np.hstack(sc_parts)
        st_all = np.hstack([p.toarray() if sp.issparse(p) else np.asarray(p) for p in st_parts])
        self.cell_groups = metacell_groups(sc_all, self.n_columns, seed=seed)
        data, levels = self._gene_set(sc_all, st_all)
        self.levels = ScaleMap().fit_moments(*levels)
        refit_dir = None if checkpoint_dir is None else Path(checkpoint_dir) / "refit"
        if not (resume and refit_dir is not None and (refit_dir / CHECKPOINT_NAME).exists()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                self.module = self._build()
        refit_settings = replace(settings, epochs=int(best), ae_fraction=n_ae / max(best, 1), patience=None,
                                 batch_size=auto_batch_size(self.module, self.config["batch_size"], data.st.shape[0], device))
        log.info("refitting on all %d genes: %d autoencoder + %d diffusion epochs (the validated length)", data.st.shape[0], n_ae, best - n_ae)
        self.refit_history = pd.DataFrame(fit(self.module, data, None, settings=refit_settings, device=device, seed=seed + 1,
                                              checkpoint_dir=refit_dir, resume=resume, progress=progress))

    # ------------------------------------------------------------------ imputation
    def impute(
        self,
        sc_target,
        *,
        n_samples: int = 8,
        sampler: str = "ddim",
        steps: int | None = 50,
        mode: str = "one_group",
        n_groups: int = 4,
        seed: int = 0,
        sequences_per_batch: int = 256,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Generate each target gene's spatial vector from its scRNA-seq vector.

        Returns ``(mean, samples)``: the mean over samples (spots x genes) and every sample
        (n_samples x spots x genes), on the ST log-normalized scale (negative values clipped
        to 0). ``sampler``: ``"ddim"`` (``steps`` deterministic steps) or ``"ddpm"``
        (ancestral; ``steps=None`` runs all T, ``steps=T/n`` the fractional 1/n T schedule).
        ``mode``: ``"one_group"`` or ``"autoregressive"`` (``n_groups`` groups, paper style).
        """
        if not self.is_trained:
            raise RuntimeError("the model is not trained: call train() or CausalGeD.load() first")
        check_shapes(sc_target, None, n_cells=self.config["n_cells"], n_spots=self.config["n_spots"])
        if n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        module = self.module.eval()
        device = next(module.parameters()).device
        sc_cols = sc_target.tocsc() if sp.issparse(sc_target) else np.asarray(sc_target)
        n_genes, n_spots = sc_target.shape[1], self.config["n_spots"]
        samples = np.empty((n_samples, n_spots, n_genes), dtype=np.float32)
        generator = torch.Generator().manual_seed(seed)
        chunk = max(1, sequences_per_batch // n_samples)
        clipped = 0.0
        for start in range(0, n_genes, chunk):
            stop = min(start + chunk, n_genes)
            z_sc, sc_mean, sc_std = standardize_genes(genes_by_cells(sc_cols[:, start:stop], self.cell_groups, self.n_columns))
            cond = module.condition_latent(torch.from_numpy(z_sc).to(device)).repeat_interleave(n_samples, dim=0)
            z = module.sample_latents(cond, sampler=sampler, steps=steps, mode=mode, n_groups=n_groups, generator=generator)
            clipped += module.last_clipped_fraction * (stop - start) / n_genes
            pattern = module.decode(z).float().view(stop - start, n_samples, n_spots).cpu().numpy()
            st_mean, st_std = self.levels.predict_moments(sc_mean, sc_std)
            values = np.maximum(pattern * st_std[:, None, None] + st_mean[:, None, None], 0.0)
            samples[:, :, start:stop] = values.transpose(1, 2, 0)
        self.sampling_info = {"sampler": sampler, "steps": steps, "mode": mode, "n_groups": n_groups if mode == "autoregressive" else None,
                              "n_samples": n_samples, "clipped_fraction": clipped}
        return samples.mean(axis=0), samples

    # ------------------------------------------------------------------ persistence
    def save(self, dirpath: str | Path) -> Path:
        """Write ``config.json``, ``model.pt`` and ``training_log.csv`` into ``dirpath`` (atomically)."""
        dirpath = Path(dirpath)
        dirpath.mkdir(parents=True, exist_ok=True)
        payload = {
            "module": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "cell_groups": None if self.cell_groups is None else torch.from_numpy(self.cell_groups),
            "levels": torch.from_numpy(self.levels.coef),
        }
        atomic_write(dirpath / WEIGHTS_NAME, lambda tmp: torch.save(payload, tmp))
        if self.history is not None:
            write_csv_atomic(self.history, dirpath / LOG_NAME, index=False)
        if self.refit_history is not None:
            write_csv_atomic(self.refit_history, dirpath / REFIT_LOG_NAME, index=False)
        write_json_atomic({"method": self.method, "params": self.config, "training": self.train_info, "data": self.data_info}, dirpath / CONFIG_NAME)
        return dirpath

    @classmethod
    def load(cls, dirpath: str | Path, *, device: str = "cpu") -> "CausalGeD":
        """Rebuild a saved model (on ``device``: cpu, cuda or auto)."""
        dirpath = Path(dirpath)
        saved = json.loads((dirpath / CONFIG_NAME).read_text())
        params = dict(saved["params"])
        model = cls(params.pop("n_spots"), params.pop("n_cells"), method=params.pop("method", saved["method"]), preset=params.pop("preset"), **params)
        payload = torch.load(dirpath / WEIGHTS_NAME, map_location="cpu", weights_only=True)
        model.module.load_state_dict(payload["module"])
        model.module.to(resolve_device(device))
        model.cell_groups = None if payload["cell_groups"] is None else payload["cell_groups"].numpy()
        model.levels = ScaleMap.from_coef(payload["levels"].numpy())
        model.train_info = saved.get("training", {})
        model.data_info = saved.get("data", {})
        if (dirpath / LOG_NAME).exists():
            model.history = pd.read_csv(dirpath / LOG_NAME)
        if (dirpath / REFIT_LOG_NAME).exists():
            model.refit_history = pd.read_csv(dirpath / REFIT_LOG_NAME)
        return model
