"""The CausalGeD model: two-headed encoder, causality-aware transformer and latent diffusion.

``CausalGeD`` (wrapper.py) is the entry point; the network pieces live one per file:
masks.py (Algorithms 1-2), encoder.py, cat.py, diffusion.py, module.py (assembly and losses),
training.py (the loop), data.py (gene-major inputs, metacells), cli.py (``train``/``impute``).
"""

from causalged.model.wrapper import PRESETS, CausalGeD

__all__ = ["CausalGeD", "PRESETS"]
