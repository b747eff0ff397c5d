"""Size guards of the costly methods: a subsample or a clear refusal, never hours or an OOM kill."""

from __future__ import annotations

import numpy as np
import pytest

from causalged.errors import InputError
from causalged.methods import get_imputer
from causalged.methods.diffusion import MODEL_SPOTS_VARIABLE, check_model_size
from causalged.methods.tangram import LIMIT_VARIABLE, MIN_MAP_CELLS


def _arrays(n_cells: int, n_spots: int, n_genes: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.gamma(1.0, 1.0, (n_cells, n_genes)), rng.gamma(1.0, 1.0, (n_spots, n_genes)), rng.gamma(1.0, 1.0, (n_cells, 2))


def test_tangram_maps_a_seeded_subsample_above_its_limit():
    sc_train, st_train, sc_target = _arrays(400, 30)
    imputer = get_imputer("tangram", epochs=3, max_entries=200 * 30).fit(sc_train, st_train)
    assert imputer.info_["cells_mapped"] == 200 and imputer.info_["cells_subsampled"] is True
    assert imputer.map_.shape == (30, 200) and imputer.predict(sc_target).shape == (30, 2)
    again = get_imputer("tangram", epochs=3, max_entries=200 * 30).fit(sc_train, st_train)
    np.testing.assert_array_equal(again.cells_, imputer.cells_)  # seeded
    whole = get_imputer("tangram", epochs=3).fit(sc_train, st_train)
    assert whole.info_["cells_mapped"] == 400 and whole.map_.shape == (30, 400)


def test_tangram_refuses_when_the_subsample_would_be_too_small(monkeypatch):
    monkeypatch.setenv(LIMIT_VARIABLE, str((MIN_MAP_CELLS - 1) * 30))
    sc_train, st_train, _ = _arrays(400, 30)
    with pytest.raises(InputError, match=f"limit of {(MIN_MAP_CELLS - 1) * 30:,} entries") as err:
        get_imputer("tangram", epochs=1).fit(sc_train, st_train)
    assert LIMIT_VARIABLE in err.value.fix


def test_diffusion_models_refuse_more_spots_than_their_limit(monkeypatch):
    monkeypatch.setenv(MODEL_SPOTS_VARIABLE, "20")
    check_model_size(20)  # at the limit: fine
    with pytest.raises(InputError, match="21 spots are above their limit of 20") as err:
        check_model_size(21)
    assert MODEL_SPOTS_VARIABLE in err.value.fix and "--eval-methods fast" in err.value.fix
    sc_train, st_train, _ = _arrays(50, 21)
    with pytest.raises(InputError, match="limit of 20"):
        get_imputer("causalged", epochs=1, device="cpu").fit(sc_train, st_train)  # refused before any training


def test_the_train_step_refuses_before_training(monkeypatch, tiny_preprocessed, tmp_path):
    from causalged.steps import train as train_step

    monkeypatch.setenv(MODEL_SPOTS_VARIABLE, "10")
    with pytest.raises(InputError, match="limit of 10"):
        train_step.run(sample="tiny", sc=tiny_preprocessed["sc"], st=tiny_preprocessed["st"], split=tiny_preprocessed["split"], outdir=tmp_path, method="causalged", device="cpu")
    assert not (tmp_path / "tiny.model").exists()


def test_two_level_metacells_follow_fine_structure():
    """1,500 small planted groups of 8 cells inside 20 far-apart clusters, pooled into 1,500
    metacells (the two-level route): almost every metacell holds cells of one planted group only
    (the coarse split alone cannot do that), and every label is used."""
    import scipy.sparse as sp

    from causalged.metacells import ONE_LEVEL_MAX, metacell_groups

    rng = np.random.default_rng(0)
    n_fine, n_metacells = 1_500, 1_500
    fine = np.repeat(np.arange(n_fine), 8)
    coarse_centres = rng.normal(0.0, 20.0, (20, 40))
    fine_centres = coarse_centres[rng.integers(0, 20, n_fine)] + rng.normal(0.0, 4.0, (n_fine, 40))
    cells = sp.csr_matrix(fine_centres[fine] + rng.normal(0.0, 0.3, (len(fine), 40)))
    assert n_metacells > ONE_LEVEL_MAX
    groups = metacell_groups(cells, n_metacells, seed=0)
    assert groups.shape == (len(fine),) and set(np.unique(groups)) == set(range(n_metacells))
    pure = np.mean([len(np.unique(fine[groups == g])) == 1 for g in range(n_metacells)])
    assert pure > 0.7  # 0.85 here; round-robin inside each coarse cluster gives about 0
    assert metacell_groups(cells, len(fine)) is None  # no pooling at or under the size


def test_the_default_fits_on_metacells_above_the_cell_limit(monkeypatch, tiny_preprocessed):
    """Above CAUSALGED_MAX_FIT_CELLS the default pools the (sparse) reference: the pooling is
    recorded, targets are pooled the same way, and accuracy on held-out panel genes stays close."""
    import anndata as ad
    import scipy.sparse as sp

    from causalged.evaluation.metrics import pcc
    from causalged.methods.base import FIT_CELLS_VARIABLE

    sc_data, st_data = ad.read_h5ad(tiny_preprocessed["sc"]), ad.read_h5ad(tiny_preprocessed["st"])
    panel = list(st_data.var_names)
    train, held = panel[: len(panel) * 2 // 3], panel[len(panel) * 2 // 3:]
    sc_train, sc_held = sp.csr_matrix(sc_data[:, train].X), sp.csr_matrix(sc_data[:, held].X)
    st_train, truth = np.asarray(st_data[:, train].X.todense() if sp.issparse(st_data.X) else st_data[:, train].X), st_data[:, held].X
    truth = truth.toarray() if sp.issparse(truth) else truth
    whole = get_imputer("knn_ridge_blend").fit(sc_train, st_train, st_coords=st_data.obsm["spatial"])
    assert "reference_pooled" not in whole.info_
    monkeypatch.setenv(FIT_CELLS_VARIABLE, "60")
    pooled = get_imputer("knn_ridge_blend").fit(sc_train, st_train, st_coords=st_data.obsm["spatial"])
    assert pooled.info_["reference_pooled"] == {"cells": sc_data.n_obs, "metacells": 60, "limit_variable": FIT_CELLS_VARIABLE}
    assert pooled.weights_.shape == (st_data.n_obs, 60) and pooled._fit_args[0].shape == (60, len(train))
    pred, samples = pooled.predict_with_samples(sc_held, n_samples=3)
    assert pred.shape == (st_data.n_obs, len(held)) and samples.shape == (3, st_data.n_obs, len(held))
    assert np.nanmean(pcc(pred, truth)) > np.nanmean(pcc(whole.predict(sc_held), truth)) - 0.1


def test_a_bad_cell_limit_is_refused_with_its_variable(monkeypatch):
    from causalged.methods.base import FIT_CELLS_VARIABLE

    sc_train, st_train, _ = _arrays(40, 10)
    monkeypatch.setenv(FIT_CELLS_VARIABLE, "many")
    with pytest.raises(InputError, match=FIT_CELLS_VARIABLE) as err:
        get_imputer("knn").fit(sc_train, st_train)
    assert "50,000" in err.value.fix
