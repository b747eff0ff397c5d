"""Report step: one MultiQC report over every sample's outputs, in ``<outdir>/multiqc/``."""

from __future__ import annotations

from pathlib import Path


def outputs(outdir: str | Path) -> dict[str, Path]:
    """The report this step writes."""
    return {"html": Path(outdir) / "multiqc" / "multiqc_report.html"}


def run(*, outdir: Path, title: str = "CausalGeD", config: Path | None = None) -> Path:
    from causalged.errors import InputError
    from causalged.report import run_multiqc

    if not Path(outdir).is_dir():
        raise InputError(outdir, "this folder does not exist, so there is nothing to report", "pass the --outdir of a finished run")
    if config is not None and not Path(config).is_file():
        raise InputError(config, "the MultiQC config does not exist", "pass an existing YAML file to --config, or leave it out")
    return run_multiqc([outdir], outputs(outdir)["html"].parent, title=title, config=config)
