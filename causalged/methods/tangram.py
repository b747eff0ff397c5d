"""Tangram-style mapping: learn where each cell goes, then carry any gene along the map.

A cells x spots matrix of logits is trained so that the mapped scRNA-seq expression of the
training genes matches the ST data, gene by gene and spot by spot (the mean of both cosine
similarities, Tangram's "cells" mode without the density term). Each cell's row is a softmax
over spots; a held-out gene's prediction is its scRNA-seq vector carried through the map.
More epochs overfit the training genes (method.md section 7), so the default is short.
"""

from __future__ import annotations

import numpy as np

from causalged.methods.base import Imputer


class TangramImputer(Imputer):
    name = "tangram"

    def __init__(self, *, epochs: int = 100, lr: float = 0.1, seed: int = 0, device: str = "cpu"):
        super().__init__(epochs=epochs, lr=lr, seed=seed, device=device)

    def _fit(self, sc_train, st_train, *, st_counts, sc_target) -> None:
        import torch

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
        self.info_ = {**self.params, "final_loss": float(loss.detach())}

    def _pattern(self, sc_target: np.ndarray) -> np.ndarray:
        return self.map_ @ sc_target
