"""GPU tasks on shared nodes: which GPU a task uses, how much of it, and what a retry changes.

- A task uses the GPU its scheduler assigned: Slurm (``--gres``) and Nextflow's local executor
  (``accelerator``) set ``CUDA_VISIBLE_DEVICES``, so ``cuda`` (device 0 of the visible ones) is
  that GPU. :func:`causalged.device.describe_device` names it in the log.
- A task sizes its batch from the total memory of that GPU (:data:`GPU_MEMORY_FRACTION`), never
  from the memory free when it starts, which another task on the same GPU may be about to take.
- A CUDA out-of-memory error exits with :data:`EXIT_CUDA_OOM` (:func:`run_exiting_on_cuda_oom`,
  used by the ``bin/`` scripts of the model steps); the pipeline retries that exit with
  ``CAUSALGED_BATCH_SCALE=0.5`` (:func:`batch_scale`), which halves the batch size.

This module does not import torch, so the step scripts start fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from causalged.errors import InputError

log = logging.getLogger(__name__)

#: Exit status of a step that ran out of GPU memory (EX_TEMPFAIL: "try again"); conf/base.config retries it.
EXIT_CUDA_OOM = 75
#: Share of the assigned GPU's total memory that the training or sampling batch may use.
GPU_MEMORY_FRACTION = 0.6
#: Environment variable: factor (0 < s <= 1) applied to every automatically chosen batch size.
BATCH_SCALE_ENV = "CAUSALGED_BATCH_SCALE"


def batch_scale() -> float:
    """The batch-size factor from ``CAUSALGED_BATCH_SCALE`` (1 when unset)."""
    raw = os.environ.get(BATCH_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = float("nan")
    if not 0 < scale <= 1:
        raise InputError(None, f"{BATCH_SCALE_ENV}={raw!r} is not a number in (0, 1]", f"unset {BATCH_SCALE_ENV}, or set it to e.g. 0.5")
    return scale


def is_cuda_oom(error: BaseException) -> bool:
    """True for PyTorch's CUDA out-of-memory errors (the typed one and the plain RuntimeError form)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "CUDA out of memory" in str(error)


def run_exiting_on_cuda_oom(step: Callable[[], object]) -> None:
    """Run ``step``; a CUDA out-of-memory error becomes one log line and exit :data:`EXIT_CUDA_OOM`."""
    try:
        step()
    except Exception as error:  # noqa: BLE001 - re-raised unless it is a CUDA OOM
        if not is_cuda_oom(error):
            raise
        scale = batch_scale()
        print(f"Error: CUDA out of memory at batch scale {scale:g} ({error}). Exit {EXIT_CUDA_OOM}: "
              f"rerun with {BATCH_SCALE_ENV}={scale / 2:g} (the pipeline retries with half the batch)", file=sys.stderr)
        raise SystemExit(EXIT_CUDA_OOM) from None
