"""Tangram-style mapping: learn where each cell goes, then carry any gene along the map.

A cells x spots matrix of logits is trained so that the mapped scRNA-seq expression of the
training genes matches the ST data, gene by gene and spot by spot (the mean of both cosine
similarities, Tangram's "cells" mode without the density term). Each cell's row is a softmax
over spots; a held-out gene's prediction is its scRNA-seq vector carried through the map.
More epochs overfit the training genes (method.md section 7), so the default is short.

Size guard: the map is dense (cells x spots logits, plus Adam's two moments and the softmax's
gradient), so above ``max_entries`` cells x spots (default :data:`MAX_MAP_ENTRIES`, or the
environment variable ``CAUSALGED_TANGRAM_MAX_ENTRIES``) the map is learned for a seeded random
subsample of ``max_entries // spots`` cells, recorded in ``info_``; when fewer than
:data:`MIN_MAP_CELLS` cells would be left, the fit refuses with an :class:`InputError`.
"""

from __future__ import annotations

import numpy as np

from causalged.errors import InputError
from causalged.limits import size_limit
from causalged.methods.base import Imputer

#: Cells x spots entries of the map learned in full: about 0.5 GB of float32 state in all;
#: the osmFISH pair (about 1.6e7) stays below it.
MAX_MAP_ENTRIES = 20_000_000
#: Fewest cells a subsampled map may keep (fewer would not cover a reference's cell types).
MIN_MAP_CELLS = 100
LIMIT_VARIABLE = "CAUSALGED_TANGRAM_MAX_ENTRIES"


class TangramImputer(Imputer):
    name = "tangram"

    def __init__(self, *, epochs: int = 100, lr: float = 0.1, seed: int = 0, device: str = "cpu", max_entries: int | None = None):
        super().__init__(epochs=epochs, lr=lr, seed=seed, device=device,
                         max_entries=int(max_entries or size_limit(LIMIT_VARIABLE, MAX_MAP_ENTRIES, meaning="the most cells x spots entries the map may hold")))

    def _mapped_cells(self, n_cells: int, n_spots: int) -> np.ndarray | None:
        """The cells the map is learned for: all (None) within the limit, else a seeded subsample."""
        limit = self.params["max_entries"]
        if n_cells * n_spots <= limit:
            return None
        keep = limit // n_spots
        if keep < MIN_MAP_CELLS:
            raise InputError(None, f"the Tangram-style map of {n_cells:,} cells x {n_spots:,} spots is above its limit of {limit:,} entries, "
                                   f"and a subsample within it would keep only {keep} cells (fewer than {MIN_MAP_CELLS})",
                             f"raise the limit with the environment variable {LIMIT_VARIABLE} (memory grows about 24 bytes per entry), "
                             "or leave tangram out of --eval-methods / --method")
        return np.sort(np.random.default_rng(self.params["seed"]).choice(n_cells, keep, replace=False))

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        import torch

        self.cells_ = self._mapped_cells(sc_train.shape[0], st_train.shape[0])
        if self.cells_ is not None:
            sc_train = sc_train[self.cells_]
        device = torch.device(self.params["device"])
        gen = torch.Generator().manual_seed(self.params["seed"])
        s = torch.as_tensor(sc_train, dtype=torch.float32, device=device)
        g = torch.as_tensor(st_train, dtype=torch.float32, device=device)
        logits = torch.randn(s.shape[0], g.shape[0], generator=gen).to(device).requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=self.params["lr"])
        cos = torch.nn.functional.cosine_similarity
        for _ in range(self.params["epochs"]):
            opt.zero_grad()
            mapped = torch.softmax(logits, dim=1).T @ s  # spots x genes
            loss = -(cos(mapped, g, dim=0).mean() + cos(mapped, g, dim=1).mean()) / 2
            loss.backward()
            opt.step()
        self.map_ = torch.softmax(logits.detach(), dim=1).T.cpu().numpy().astype(np.float64)  # spots x cells
        self.info_ = {**self.params, "final_loss": float(loss.detach()), "cells_mapped": int(s.shape[0]),
                      "cells_subsampled": self.cells_ is not None}

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return self.map_ @ (sc_target if self.cells_ is None else sc_target[self.cells_])
