"""Normalization step: log1p of counts scaled to the median total, raw counts kept in layers["counts"].

Inputs that are log-normalized already pass through unchanged with ``already_normalized``; without
it, non-integer values are refused (normalizing twice would distort them).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from causalged import preprocess
from causalged.io import check_writable, ensure_not_input, read_h5ad, write_h5ad_atomic
from causalged.stream import read_reference


def outputs(sample: str, outdir: str | Path) -> dict[str, Path]:
    """The files this step writes (the names modules/local/normalize declares)."""
    outdir = Path(outdir)
    return {"sc": outdir / f"{sample}.sc.norm.h5ad", "st": outdir / f"{sample}.st.norm.h5ad"}


def run(*, sample: str, sc: Path, st: Path, outdir: Path = Path("."), already_normalized: bool = False) -> dict[str, Path]:
    out = outputs(sample, outdir)
    check_writable(outdir)
    for path in out.values():
        ensure_not_input(path, [sc, st])
    for role, path in (("sc", sc), ("st", st)):
        with read_reference(path) if role == "sc" else contextlib.nullcontext(read_h5ad(path, role=role)) as data:
            # name the user's file, not the QC step's copy of it, in an error about its values
            source = data.uns.get("causalged", {}).get("qc", {}).get("inputs", {}).get(role) or path
            write_h5ad_atomic(preprocess.normalize(data, already_normalized=already_normalized, path=source), out[role])
    return out
