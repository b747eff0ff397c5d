"""The pipeline's steps, one module each: a plain function ``run(**keywords)`` and ``outputs(...)``.

``run`` takes paths in and writes its outputs atomically under ``outdir`` (prefixed by the sample
id); ``outputs`` names those files, and every caller takes the names from it: the step itself,
``causalged run`` (which chains the steps, ``causalged.pipeline``), the resume record and the
tests that compare them with the Nextflow modules' ``output:`` blocks. The keywords of ``run``
are those of :mod:`causalged.params` for the step, with the same defaults (a test checks).
Modules are imported on demand, so ``causalged --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from causalged.params import STEPS


def step_module(step: str) -> ModuleType:
    """``causalged.steps.<step>`` (``validate-samplesheet`` -> ``validate_samplesheet``, ``import`` -> ``import_``)."""
    name = step.replace("-", "_")
    return import_module(f"causalged.steps.{name}_" if name == "import" else f"causalged.steps.{name}")


__all__ = ["STEPS", "step_module"]
