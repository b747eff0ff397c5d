"""Ablation step (optional): the paper's ablation claims, one axis at a time, on a sample's raw pair.

The grid itself is the research harness (:mod:`causalged.research.ablation`); this step gives it
the pipeline's parameters and writes its verdicts and figures as MultiQC content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from causalged.errors import InputError


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files the Nextflow module declares for a sample (page, CSV) under ``outdir``."""
    outdir = Path(outdir)
    return {"page": outdir / f"{sample}.ablations.md", "csv": outdir / f"{sample}.ablations.csv", "mqc_dir": outdir / "mqc"}


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(None, f"--seeds must be comma-separated integers, got {text!r}", "pass e.g. --seeds 0,1") from None


def run(*, datasets: Sequence[str], output: Path = Path("docs/ablations.md"), preset: str = "cpu", device: str = "auto",
        epochs: int | None = None, n_samples: int = 8, seeds: str = "0,1", n_folds: int = 3, axes: str | None = None, jobs: int = 1,
        time_limit: float | None = None, mqc_dir: Path | None = None, command: str = "causalged ablate") -> Path:
    """Run (or continue) the grid on each dataset folder and write the page; returns its path."""
    from causalged.research.ablation import ablate, grid

    known = sorted({s.axis for s in grid()} - {"default"})
    chosen = [a.strip() for a in axes.split(",") if a.strip()] if axes else None
    unknown = sorted(set(chosen or []) - set(known))
    if unknown:
        raise InputError(None, f"--axes: unknown axes {unknown}", f"choose from {','.join(known)}")
    return ablate(list(datasets), output=Path(output), seeds=_seeds(seeds), n_folds=n_folds, axes=chosen, preset=preset, device=device,
                  epochs=epochs, n_samples=n_samples, jobs=jobs, time_limit=time_limit, mqc_dir=mqc_dir, command=command)
