"""Every documented bad input fails with an InputError naming the file and the fix, and writes nothing."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from causalged.cli import cli
from causalged.errors import InputError
from causalged.io import read_h5ad


def write(tmp_path, name, X, **kwargs):
    data = ad.AnnData(X=np.asarray(X, dtype=np.float32), **kwargs)
    data.obsm["spatial"] = np.zeros((data.n_obs, 2))
    path = tmp_path / name
    data.write_h5ad(path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.h5ad: the spatial \(ST\) data file does not exist\. Fix: check the path"):
        read_h5ad(tmp_path / "missing.h5ad", role="st")


def test_not_h5ad(tmp_path):
    path = tmp_path / "counts.h5ad"
    path.write_text("gene,cell1\nA,1\n")
    with pytest.raises(InputError, match=r"counts\.h5ad: could not be read as AnnData .*Fix: convert the matrix to \.h5ad"):
        read_h5ad(path, role="sc")


def test_unreadable_file(tmp_path):
    import os

    path = write(tmp_path, "locked.h5ad", [[1.0]])
    path.chmod(0)
    if os.access(path, os.R_OK):  # root ignores permissions
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(InputError, match="not readable"):
        read_h5ad(path, role="sc")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="found a directory"):
        read_h5ad(tmp_path, role="sc")


def test_empty_matrix(tmp_path):
    path = write(tmp_path, "empty.h5ad", np.zeros((0, 3)))
    with pytest.raises(InputError, match=r"empty\.h5ad: the scRNA-seq reference matrix is empty \(0 observations x 3 genes\)"):
        read_h5ad(path, role="sc")


@pytest.mark.parametrize("bad,problem", [(np.nan, "NaN or infinite"), (-1.0, "negative values")])
def test_negative_or_nan_values(tmp_path, bad, problem):
    path = write(tmp_path, "bad.h5ad", [[1.0, bad], [2.0, 3.0]])
    with pytest.raises(InputError, match=f"bad.h5ad: the expression matrix contains {problem}"):
        read_h5ad(path, role="sc")


def test_missing_coordinates(tmp_path):
    path = tmp_path / "st.h5ad"
    ad.AnnData(X=np.ones((2, 2), dtype=np.float32)).write_h5ad(path)
    with pytest.raises(InputError, match=r'no spot coordinates.*Fix: add the coordinates as adata.obsm\["spatial"\]'):
        read_h5ad(path, role="st")


def test_duplicated_gene_names_made_unique_with_warning(tmp_path, caplog):
    path = write(tmp_path, "dup.h5ad", [[1.0, 2.0, 3.0]], var=pd.DataFrame(index=["A", "A", "B"]))
    with caplog.at_level("WARNING"):
        data = read_h5ad(path, role="sc")
    assert data.var_names.is_unique and "duplicated gene names" in caplog.text


def test_cli_reports_no_shared_genes_and_writes_nothing(tmp_path):
    sc_path = write(tmp_path, "sc.h5ad", [[1.0, 2.0]], var=pd.DataFrame(index=["A", "B"]))
    st_path = write(tmp_path, "st.h5ad", [[1.0, 2.0]], var=pd.DataFrame(index=["X", "Y"]))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["qc", "--sample", "s", "--sc", str(sc_path), "--st", str(st_path), "--outdir", str(out)])
    assert result.exit_code == 2
    assert "st.h5ad: no gene of the ST panel" in result.output and "Fix:" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_cli_every_cell_removed(tmp_path):
    sc_path = write(tmp_path, "sc.h5ad", [[1.0, 0.0]], var=pd.DataFrame(index=["A", "B"]))
    st_path = write(tmp_path, "st.h5ad", [[1.0, 2.0]], var=pd.DataFrame(index=["A", "B"]))
    result = CliRunner().invoke(cli, ["qc", "--sample", "s", "--sc", str(sc_path), "--st", str(st_path), "--outdir", str(tmp_path / "o"),
                                      "--min-genes-cell", "2", "--no-scale-min-genes"])
    assert result.exit_code == 2 and "sc.h5ad: QC removed every one of the 1 cells" in result.output


def test_cli_refuses_to_overwrite_an_input(tmp_path):
    sc_path = write(tmp_path, "s.sc.qc.h5ad", [[1.0, 2.0]], var=pd.DataFrame(index=["A", "B"]))
    st_path = write(tmp_path, "st.h5ad", [[1.0, 2.0]], var=pd.DataFrame(index=["A", "B"]))
    before = sc_path.read_bytes()
    result = CliRunner().invoke(cli, ["qc", "--sample", "s", "--sc", str(sc_path), "--st", str(st_path), "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and "would overwrite an input" in result.output
    assert sc_path.read_bytes() == before


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    from causalged.io import atomic_write

    def failing(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.txt", failing)
    assert list(tmp_path.iterdir()) == []
