"""Samplesheet validation: the JSON Schema that Nextflow's nf-schema uses, plus checks across rows.

Columns: ``sample``, ``sc`` (an .h5ad, Cell Ranger .h5 or matrix folder, or .loom), ``st`` (an
.h5ad, a SpatialData .zarr or an instrument folder) and optional ``genes`` (a text file of genes
to impute) and ``platform`` (only confirms: the import step recognises a layout from its files). Relative paths resolve from the current directory, as
they do when Nextflow reads the same sheet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import jsonschema
import pandas as pd

from causalged.errors import InputError

COLUMNS = ("sample", "sc", "st", "genes", "platform")


@dataclass(frozen=True)
class Sample:
    id: str
    sc: Path
    st: Path
    genes: Path | None = None
    platform: str | None = None


def input_schema() -> dict:
    return json.loads(files("causalged.schemas").joinpath("schema_input.json").read_text())


def read_samplesheet(path: str | Path) -> list[Sample]:
    """Validate a samplesheet and return its rows; every problem names the row and the fix."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "the samplesheet path is a directory, not a CSV file", "pass --input with the CSV file inside it (columns sample,sc,st[,genes,platform])")
    if not path.is_file():
        raise InputError(path, "the samplesheet does not exist", "pass --input with a CSV file (columns sample,sc,st[,genes,platform])")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"could not be read as CSV ({err})", "save it as comma-separated text with a header line") from err
    table.columns = [c.strip() for c in table.columns]
    unknown = sorted(set(table.columns) - set(COLUMNS))
    if unknown:
        raise InputError(path, f"unknown columns {unknown}", f"use only the columns {', '.join(COLUMNS)}")
    if table.empty:
        raise InputError(path, "the samplesheet has a header but no rows", "add one row per sample")
    records = [{k: v.strip() for k, v in row.items() if v.strip()} for row in table.to_dict(orient="records")]

    validator = jsonschema.Draft202012Validator(input_schema())
    for line, error in ((i + 2, e) for i, rec in enumerate(records) for e in validator.iter_errors([rec])):
        field = error.path[-1] if len(error.path) > 1 else None
        message = _schema_message(error, field)
        raise InputError(path, f"row {line - 1} (line {line}){f', column {field!r}' if field else ''}: {message}", "correct that cell; see docs/usage.md for the samplesheet format")

    ids = [rec["sample"] for rec in records]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise InputError(path, f"duplicated sample ids {duplicated}", "give every row its own sample id")

    samples = []
    for number, rec in enumerate(records, start=1):
        for column in ("sc", "st", "genes"):
            if column not in rec:
                continue
            where = Path(rec[column])
            if not where.exists() or (column == "genes" and not where.is_file()):
                problem = "is a directory, not a file" if where.is_dir() else "does not exist"
                raise InputError(path, f"row {number}, column {column!r}: {rec[column]} {problem}", "fix the path (relative paths resolve from the directory you run in)")
        samples.append(Sample(
            id=rec["sample"], sc=Path(rec["sc"]), st=Path(rec["st"]),
            genes=Path(rec["genes"]) if "genes" in rec else None, platform=rec.get("platform"),
        ))
    return samples


def _schema_message(error: jsonschema.ValidationError, field: str | None) -> str:
    if error.validator == "required":
        return error.message.replace("'", "") + " (a required column is empty or missing)"
    if field:
        custom = input_schema()["items"]["properties"].get(field, {}).get("errorMessage")
        if custom:
            return custom
    return error.message
