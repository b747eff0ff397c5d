"""The Python API: the docs page's example runs, the API predicts what the impute step writes, inputs stay untouched."""

from __future__ import annotations

import inspect
import re

import anndata as ad
import numpy as np
import pytest

import causalged
from causalged import params as spec
from causalged.errors import InputError


def test_docs_example_runs(repo, monkeypatch):
    monkeypatch.chdir(repo)
    code = "\n".join(re.findall(r"```python\n(.*?)```", (repo / "docs" / "api.md").read_text(), re.S))
    assert "causalged.impute" in code and "causalged.crossvalidate" in code
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)
    imputed, scores = scope["imputed"], scope["scores"]
    assert {"expected_pcc", "trust"} <= set(imputed.var.columns) and imputed.var["expected_pcc"].notna().all()
    assert (imputed.layers["std"] >= 0).all() and np.isfinite(imputed.X).all()
    assert set(scores.method) == {"knn_ridge_blend", "kernel_ridge", "mean_map"} and set(scores.protocol) == {"heldout"}
    # a learned method beats the gene-independent floor on this simulated pair
    assert scope["per_method"]["knn_ridge_blend"] > scope["per_method"]["mean_map"]


def test_impute_equals_the_impute_step(tiny_preprocessed, tmp_path):
    """On the hvg step's outputs, causalged.impute and `causalged train` + `causalged impute` give the same maps."""
    from causalged.steps import impute, train

    p = tiny_preprocessed
    model = train.run(sample="tiny", sc=p["sc"], st=p["st"], split=p["split"], outdir=tmp_path, method="kernel_ridge")
    stepped = ad.read_h5ad(impute.run(sample="tiny", sc=p["sc"], st=p["st"], model=model, outdir=tmp_path, n_samples=3))
    sc, st = ad.read_h5ad(p["sc"]), ad.read_h5ad(p["st"])
    before = sc.X.copy()
    api = causalged.impute(sc, st, method="kernel_ridge", n_samples=3, already_normalized=True,
                           genes=list(sc.var_names[sc.var["causalged_target"].to_numpy(bool)]))
    assert list(api.var_names) == list(stepped.var_names) and api.n_vars > 0
    np.testing.assert_allclose(api.X, stepped.X, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(api.layers["std"], stepped.layers["std"], rtol=1e-3, atol=1e-4)
    assert (sc.X != before).nnz == 0 if hasattr(before, "nnz") else np.array_equal(sc.X, before)  # input untouched


def test_bad_arguments_are_one_clear_error(repo):
    sc, st = ad.read_h5ad(repo / "tests/data/tiny_sc.h5ad"), ad.read_h5ad(repo / "tests/data/tiny_st.h5ad")
    with pytest.raises(InputError, match="--seed must be between 0 and"):
        causalged.impute(sc, st, seed=-1)
    with pytest.raises(InputError, match="reference does not have"):
        causalged.impute(sc, st, genes=["NotAGene"])
    with pytest.raises(InputError, match="unknown method"):
        causalged.crossvalidate(sc, st, methods="knn,nonsense", n_folds=3)


@pytest.mark.parametrize("function", ["impute", "crossvalidate"])
def test_api_defaults_are_the_tables(function):
    """A keyword the API shares with the pipeline has the pipeline's default."""
    signature = inspect.signature(getattr(causalged, function))
    table = {p.name: p for p in spec.PARAMS if p.nf}
    table["methods"] = table["eval_methods"]  # crossvalidate(methods=...) is the pipeline's --eval_methods
    own = {"impute": {"n_folds"}}.get(function, set())  # impute: None = no cross-validation
    shared = [k for k in signature.parameters if k in table and k not in own]
    assert {"seed", "n_samples", "sampler", "sampling_steps"} <= set(shared)
    for key in shared:
        assert signature.parameters[key].default == table[key].default, f"{function}({key}=...)"


def test_instrument_folders_and_atlas_references_in_a_notebook(tmp_path):
    """read_spatial / read_reference give what impute takes; an Ensembl-indexed CELLxGENE reference is matched by symbol."""
    import warnings

    from fixtures.instrument_folders import load_tiny, vendor_ids, write_layout

    st, sc = load_tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder, reference = write_layout("xenium", tmp_path, st, sc), write_layout("cellxgene", tmp_path, st, sc)
    spatial, atlas = causalged.read_spatial(folder), causalged.read_reference(reference)
    assert spatial.uns["causalged"]["import"]["st"]["layout"] == "xenium" and atlas.var_names[0].startswith("ENSMUSG")
    from_folder = causalged.impute(atlas, spatial, method="kernel_ridge", n_samples=2)
    from_h5ad = causalged.impute(sc, st, method="kernel_ridge", n_samples=2)
    assert list(from_folder.var_names) == list(from_h5ad.var_names)  # symbols, not Ensembl ids
    np.testing.assert_allclose(from_folder[vendor_ids("xenium", st)].X, from_h5ad.X, rtol=1e-5, atol=1e-6)
