"""Shared fixtures: the committed tiny dataset, the real datasets beside the repo, one CPU thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_paths() -> dict[str, Path]:
    """The committed tiny simulated pair (made by `causalged simulate --size tiny --name tiny`)."""
    return {"sc": TEST_DATA / "tiny_sc.h5ad", "st": TEST_DATA / "tiny_st.h5ad", "genes": TEST_DATA / "tiny_genes.txt"}


@pytest.fixture(scope="session")
def tiny_preprocessed(tmp_path_factory, tiny_paths) -> dict[str, Path]:
    """The tiny pair after qc -> normalize -> hvg (5 folds), shared by tests that need model inputs."""
    from causalged.steps import hvg as hvg_step, normalize as normalize_step, qc as qc_step

    out = tmp_path_factory.mktemp("tiny_pre")
    q = qc_step.run(sample="tiny", sc=tiny_paths["sc"], st=tiny_paths["st"], outdir=out)
    n = normalize_step.run(sample="tiny", sc=q["sc"], st=q["st"], outdir=out)
    return hvg_step.run(sample="tiny", sc=n["sc"], st=n["st"], outdir=out, genes=tiny_paths["genes"], n_folds=5, seed=0)


def shared_dataset(name: str) -> Path:
    """A real dataset folder under ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA / name
    if not (path / "sc.h5ad").exists():
        pytest.skip(f"real dataset {name} not found at {path} (../shared is not beside this checkout)")
    return path
