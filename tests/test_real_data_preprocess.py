"""Smoke test of the preprocessing steps on the real osmFISH pair (skipped without ../shared)."""

from __future__ import annotations

import json

import anndata as ad

from conftest import shared_dataset
from causalged.steps import hvg as hvg_step, normalize as normalize_step, qc as qc_step


def test_osmfish_preprocessing(tmp_path):
    data = shared_dataset("osmfish_ssp_cortex")
    q = qc_step.run(sample="osm", sc=data / "sc.h5ad", st=data / "st.h5ad", outdir=tmp_path)
    summary = json.loads(q["json"].read_text())
    assert summary["min_genes_cell_used"] == 1  # 33-gene reference: scaled down from 500
    assert summary["sc"]["n_obs_after"] > 0.9 * summary["sc"]["n_obs_before"]
    assert summary["n_shared_genes"] == 33
    n = normalize_step.run(sample="osm", sc=q["sc"], st=q["st"], outdir=tmp_path)
    h = hvg_step.run(sample="osm", sc=n["sc"], st=n["st"], outdir=tmp_path, n_folds=10)
    split = json.loads(h["split"].read_text())
    assert len(split["shared_genes"]) == 33 and split["n_folds"] == 10 and split["target_genes"] == []
    st_data = ad.read_h5ad(h["st"])
    assert st_data.shape == (summary["st"]["n_obs_after"], 33)
