"""Samplesheet validation: schema per row and checks across rows."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from causalged.cli import cli
from causalged.errors import InputError
from causalged.samplesheet import read_samplesheet


@pytest.fixture
def files(tmp_path):
    for name in ("a_sc.h5ad", "a_st.h5ad", "genes.txt"):
        (tmp_path / name).write_text("x")
    return tmp_path


def sheet(tmp_path, text):
    path = tmp_path / "samplesheet.csv"
    path.write_text(text)
    return path


def test_valid_sheet(files):
    path = sheet(files, f"sample,sc,st,genes,platform\nA1,{files}/a_sc.h5ad,{files}/a_st.h5ad,{files}/genes.txt,osmFISH\nB,{files}/a_sc.h5ad,{files}/a_st.h5ad,,\n")
    samples = read_samplesheet(path)
    assert [s.id for s in samples] == ["A1", "B"]
    assert samples[0].genes.name == "genes.txt" and samples[1].genes is None and samples[0].platform == "osmFISH"


def test_duplicated_sample_ids(files):
    row = f"{files}/a_sc.h5ad,{files}/a_st.h5ad"
    path = sheet(files, f"sample,sc,st\nX,{row}\nX,{row}\n")
    with pytest.raises(InputError, match=r"samplesheet.csv: duplicated sample ids \['X'\]. Fix: give every row its own sample id"):
        read_samplesheet(path)


def test_missing_file(files):
    path = sheet(files, f"sample,sc,st\nX,{files}/nope.h5ad,{files}/a_st.h5ad\n")
    with pytest.raises(InputError, match=r"row 1, column 'sc': .*nope.h5ad does not exist"):
        read_samplesheet(path)


@pytest.mark.parametrize("row,message", [
    ("bad id,{f}/a_sc.h5ad,{f}/a_st.h5ad", "column 'sample': Sample id must start"),
    ("X,{f}/a_sc.csv,{f}/a_st.h5ad", "column 'sc': scRNA-seq reference must be an .h5ad, a Cell Ranger"),
    ("X,{f}/a_sc.h5ad,{f}/a_st.loom", "column 'st': Spatial data must be an .h5ad, a SpatialData .zarr or an instrument folder"),
    ("X,,{f}/a_st.h5ad", "sc is a required property"),
])
def test_schema_errors_name_row_and_column(files, row, message):
    path = sheet(files, "sample,sc,st\n" + row.format(f=files) + "\n")
    with pytest.raises(InputError, match=message):
        read_samplesheet(path)


def test_unknown_column_and_empty_sheet(files):
    with pytest.raises(InputError, match=r"unknown columns \['fastq'\]"):
        read_samplesheet(sheet(files, "sample,sc,st,fastq\n"))
    with pytest.raises(InputError, match="no rows"):
        read_samplesheet(sheet(files, "sample,sc,st\n"))


def test_committed_test_sheet_validates_through_the_cli(repo, monkeypatch):
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(cli, ["validate-samplesheet", "--input", "tests/data/samplesheet_test.csv"])
    assert result.exit_code == 0, result.output
    assert "1 sample(s) OK: tiny" in result.output


def test_schema_file_is_shared_with_nextflow(repo):
    assert (repo / "assets" / "schema_input.json").resolve() == (repo / "causalged" / "schemas" / "schema_input.json").resolve()
