"""Samplesheet check: the schema (assets/schema_input.json) and checks across rows, before any work."""

from __future__ import annotations

from pathlib import Path


def run(*, input: Path, output: Path | None = None) -> str:
    """Check ``input``; with ``output``, write the validated sheet with absolute paths. Returns a one-line summary."""
    import pandas as pd

    from causalged.io import ensure_not_input, write_csv_atomic
    from causalged.samplesheet import read_samplesheet

    samples = read_samplesheet(input)
    if output:
        ensure_not_input(output, [input, *(p for s in samples for p in (s.sc, s.st, s.genes))])
        rows = [{"sample": s.id, "sc": s.sc.resolve(), "st": s.st.resolve(), "genes": s.genes.resolve() if s.genes else "",
                 "platform": s.platform or ""} for s in samples]
        write_csv_atomic(pd.DataFrame(rows), output, index=False)
    return f"{input}: {len(samples)} sample(s) OK: {', '.join(s.id for s in samples)}"
