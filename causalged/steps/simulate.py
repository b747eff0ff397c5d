"""Demo data: a paired scRNA-seq reference and spot-level ST from a known regulatory network (causalged.simulate)."""

from __future__ import annotations

from pathlib import Path


def run(*, outdir: Path = Path("."), name: str = "demo", size: str = "demo", seed: int = 0, grn: str = "cell", n_cells: int | None = None,
        n_spots: int | None = None, n_genes: int | None = None, panel_fraction: float | None = None,
        base_mean: float | None = None) -> dict[str, Path]:
    """Simulate and write the pair; atlas-size pairs are written a block of cells at a time, never held whole."""
    from causalged.simulate import write_demo

    return write_demo(outdir, name=name, size=size, seed=seed, grn=grn, n_cells=n_cells, n_spots=n_spots, n_genes=n_genes,
                      panel_fraction=panel_fraction, base_mean=base_mean)
