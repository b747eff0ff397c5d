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
    from causalged.model.cli import train_model

    monkeypatch.setenv(MODEL_SPOTS_VARIABLE, "10")
    with pytest.raises(InputError, match="limit of 10"):
        train_model("tiny", tiny_preprocessed["sc"], tiny_preprocessed["st"], tiny_preprocessed["split"], tmp_path, method="causalged", device="cpu")
    assert not (tmp_path / "tiny.model").exists()
