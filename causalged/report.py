"""MultiQC custom content: the per-sample files every step writes, and the final report.

MultiQC picks up files by name: ``*_mqc.tsv`` (tables, general statistics), ``*_mqc.json``
(line graphs), ``*_mqc.html`` (figures: the PNG embedded, see :func:`write_mqc_figure`) and
``*_mqc_versions.yml`` (software versions). Section ids used by the pipeline, in report order
(see ``assets/multiqc_config.yml``): ``causalged_general`` (general statistics),
``causalged_qc``, ``causalged_hvg``, ``causalged_training``, ``causalged_training_pcc``,
``causalged_metrics``, ``causalged_trust``, ``causalged_simulated_truth`` and figure sections
``causalged_fig<rank>_<figure>_<sample>``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from causalged.io import atomic_write, to_jsonable, write_text_atomic

log = logging.getLogger(__name__)


def write_mqc_table(
    df: pd.DataFrame,
    path: str | Path,
    *,
    section_id: str,
    section_name: str,
    description: str,
    plot_type: str = "table",
    headers: Mapping[str, Mapping] | None = None,
) -> Path:
    """Write a ``*_mqc.tsv`` table; the first column must be the row name (``Sample``).

    Every float column is shown with three decimals (accuracy numbers that differ in the
    second decimal must be told apart); ``headers`` adds or overrides MultiQC column settings
    (title, description, format, scale).
    """
    path = Path(path)
    if not path.name.endswith("_mqc.tsv"):
        raise ValueError(f"MultiQC table files must end in _mqc.tsv, got {path.name}")
    # every column is listed: MultiQC shows only the listed ones once any is
    columns = {str(c): {"format": DECIMALS} if pd.api.types.is_float_dtype(df[c]) else {} for c in df.columns[1:]}
    for column, settings in (headers or {}).items():
        columns[column] = {**columns.get(column, {}), **settings}
    header = (
        f"# id: '{section_id}'\n"
        f"# section_name: '{_quote(section_name)}'\n"
        f"# description: '{_quote(description)}'\n"
        f"# plot_type: '{plot_type}'\n"
        + (f"# headers: {json.dumps(columns)}\n" if columns else "")
    )
    return write_text_atomic(header + df.to_csv(sep="\t", index=False), path)


#: MultiQC number format of every float column of our tables.
DECIMALS = "{:,.3f}"


def write_mqc_linegraph(
    data: Mapping[str, Mapping[float, float]],
    path: str | Path,
    *,
    section_id: str,
    section_name: str,
    description: str,
    xlab: str,
    ylab: str,
) -> Path:
    """Write a ``*_mqc.json`` line graph: ``data`` maps a series name to {x: y}."""
    content = {
        "id": section_id,
        "section_name": section_name,
        "description": description,
        "plot_type": "linegraph",
        "pconfig": {"id": f"{section_id}_plot", "title": section_name, "xlab": xlab, "ylab": ylab},
        "data": {name: {float(x): float(y) for x, y in series.items()} for name, series in data.items()},
    }
    return write_text_atomic(json.dumps(to_jsonable(content), indent=1), path)


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def write_mqc_figure(fig, png: str | Path, *, section_id: str, section_name: str, description: str) -> tuple[Path, Path]:
    """A figure as ``<name>.png`` for people and ``<name>_mqc.html`` (the PNG embedded) for MultiQC.

    The HTML route names the section and describes it; a bare ``*_mqc.png`` would be titled from
    its file name, and two samples' figures of one kind would share (and overwrite) one section,
    so ``section_id`` must be unique per sample.
    """
    import base64

    png = save_figure(fig, png)
    html = png.with_name(png.stem + "_mqc.html")
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    text = (f"<!--\nid: '{section_id}'\nsection_name: '{_quote(section_name)}'\ndescription: '{_quote(description)}'\n-->\n"
            f'<img src="data:image/png;base64,{encoded}" alt="{_quote(section_name)}" style="max-width:100%;height:auto">\n')
    return png, write_text_atomic(text, html)


def write_versions(path: str | Path, process: str, tools: Mapping[str, str]) -> Path:
    """nf-core style ``versions.yml`` / ``*_mqc_versions.yml``: ``PROCESS: {tool: version}``."""
    lines = [f'"{process}":'] + [f'    {tool}: "{ver}"' for tool, ver in tools.items()]
    return write_text_atomic("\n".join(lines) + "\n", path)


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape results, for versions files and run records."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("causalged", "torch", "anndata", "scanpy", "numpy", "scikit-learn", "multiqc"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def run_multiqc(search_dirs: Iterable[str | Path], outdir: str | Path, *, title: str = "CausalGeD", config: str | Path | None = None) -> Path:
    """Render one self-contained MultiQC HTML report from the custom-content files found.

    MultiQC writes into a hidden temporary folder beside the report, and the finished report
    is moved into place, so a killed or failed run never leaves a partial report.
    """
    import os
    import shutil
    import tempfile

    from causalged.errors import os_error

    outdir = Path(outdir)
    report = outdir / "multiqc_report.html"
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".multiqc.", suffix=".tmp", dir=outdir))
    except OSError as err:
        raise os_error(err, outdir) from err
    try:
        config = Path(config) if config else default_multiqc_config()
        cmd = [sys.executable, "-m", "multiqc", "--force", "--no-data-dir", "--title", title, "--filename", report.name, "--outdir", str(staging)]
        if config is not None and config.exists():
            cmd += ["--config", str(config)]
        cmd += [str(d) for d in search_dirs]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not (staging / report.name).exists():
            raise RuntimeError(f"MultiQC failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        try:
            os.replace(staging / report.name, report)
        except OSError as err:
            raise os_error(err, report) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("MultiQC report: %s", report)
    return report


def default_multiqc_config() -> Path | None:
    """The pipeline's ``assets/multiqc_config.yml`` when running from a source checkout."""
    candidate = Path(__file__).resolve().parent.parent / "assets" / "multiqc_config.yml"
    return candidate if candidate.exists() else None


def slug(text: str) -> str:
    """``text`` as a MultiQC section id part: letters, digits and underscores only."""
    return "".join(ch if ch.isalnum() else "_" for ch in str(text))


def _quote(text: str) -> str:
    return text.replace("'", "’").replace("\n", " ")
