"""Which torch device a command runs on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

Every command that can use a GPU (the pipeline, train, impute, crossval, evaluate) resolves its
``--device`` here before it reads any data, so a request for ``cuda`` on a machine where PyTorch
sees no GPU is one clear input error up front, not a failure deep inside a fit. ``auto`` takes
CUDA whenever PyTorch sees a GPU. ``cuda`` is the GPU the scheduler assigned: Slurm
(``--gres``) and Nextflow's ``accelerator`` set ``CUDA_VISIBLE_DEVICES``, so device 0 of the
visible ones is that GPU, and the log names the physical GPU it is.

It lives at the top of the package, not in the model, because the command line and the
pipeline choose the device without needing anything else from the model; torch is imported
only when a device is resolved.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from causalged.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: The ``--device`` values (``cuda:N`` is accepted too).
DEVICES = ("auto", "cpu", "cuda")


def describe_device(device: torch.device) -> str:
    """``cuda:0`` plus the physical GPU it is when the scheduler restricted the visible ones."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device.type != "cuda" or not visible:
        return str(device)
    index = device.index or 0
    assigned = [v.strip() for v in visible.split(",") if v.strip()]
    physical = assigned[index] if index < len(assigned) else "?"
    return f"{device} (GPU {physical} of CUDA_VISIBLE_DEVICES={visible})"


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when PyTorch sees a GPU; asking for ``cuda`` without one is an error."""
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise InputError(None, f"unknown device {device!r}", f"use one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif str(device).startswith("cuda") and not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        raise InputError(
            None,
            f"--device {device} was requested but PyTorch sees no CUDA GPU ({build})",
            "run on a machine with an NVIDIA GPU and a CUDA build of torch, or pass --device cpu (or auto)",
        )
    resolved = torch.device(device)
    if resolved.type == "cuda":
        log.info("using %s", describe_device(resolved))
    return resolved
