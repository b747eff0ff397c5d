"""The default's inner model selection: it finds the right part when the data say which one is
right, scores candidates correctly, and never reads the genes it predicts."""

from __future__ import annotations

import numpy as np
import pytest

from causalged.methods import get_imputer
from causalged.arrays import zscore
from causalged.methods.blend import _blend_pcc, _covariances
from causalged.methods.spatial import neighbour_graph


def _mean_pcc(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.mean(zscore(pred) * zscore(truth), axis=0)))


def _split(sc: np.ndarray, st: np.ndarray, n_targets: int) -> dict:
    train, target = slice(0, sc.shape[1] - n_targets), slice(sc.shape[1] - n_targets, None)
    return {"sc_train": sc[:, train], "st_train": st[:, train], "sc_target": sc[:, target], "truth": st[:, target]}


@pytest.fixture(scope="module")
def linear_genes():
    """A linear gene-to-gene map: every gene is a signed mix of 3 programs, so a target's ST vector
    is the same linear combination of training genes' ST vectors as its scRNA-seq vector is of
    theirs; the cells come in 3 discrete types while spots vary continuously, so kNN is coarse."""
    rng = np.random.default_rng(1)
    n_genes = 60
    loadings = rng.normal(size=(3, n_genes))
    types = rng.integers(0, 3, 400)
    sc = 5.0 + loadings[types] + 0.3 * rng.normal(size=(400, n_genes))
    st = 5.0 + rng.normal(size=(300, 3)) @ loadings + 0.3 * rng.normal(size=(300, n_genes))
    return _split(sc, st, n_targets=12)


def test_inner_selection_picks_the_linear_kernel_when_the_map_is_linear(linear_genes):
    d = linear_genes
    blend = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"])
    assert blend.info_["ridge_kernel"] == "linear"
    assert blend.info_["alpha"] < 0.5  # the ridge view carries the blend, so its kernel mattered
    assert blend.info_["selected_by"] == "inner CV on training genes"
    rbf = get_imputer("knn_ridge_blend", ridge_kernel="rbf").fit(d["sc_train"], d["st_train"])
    assert _mean_pcc(blend.predict(d["sc_target"]), d["truth"]) > _mean_pcc(rbf.predict(d["sc_target"]), d["truth"]) + 0.02


@pytest.fixture(scope="module")
def smooth_tissue():
    """Spots on a 24 x 24 lattice whose programs vary smoothly in space, measured with heavy
    per-spot noise (the noise of a spot's own genes enters every prediction made from them)."""
    rng = np.random.default_rng(2)
    n_genes = 40
    xy = np.stack(np.meshgrid(np.arange(24), np.arange(24)), -1).reshape(-1, 2).astype(float)
    fields = np.stack([np.sin(xy[:, 0] / 4.0), np.cos(xy[:, 1] / 5.0), np.sin((xy[:, 0] + xy[:, 1]) / 6.0)], 1)
    loadings = rng.normal(size=(3, n_genes))
    sc = 5.0 + rng.normal(size=(500, 3)) @ loadings + 0.3 * rng.normal(size=(500, n_genes))
    st = 5.0 + fields @ loadings + 2.0 * rng.normal(size=(len(xy), n_genes))
    return {**_split(sc, st, n_targets=10), "coords": xy}


def test_spatial_view_is_chosen_for_smooth_tissue_and_raises_heldout_pcc(smooth_tissue):
    d = smooth_tissue
    with_space = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"], st_coords=d["coords"])
    without = get_imputer("knn_ridge_blend", spatial_weight=0.0).fit(d["sc_train"], d["st_train"], st_coords=d["coords"])
    assert with_space.info_["spatial_weight"] > 0 and with_space.info_["spatial_view"] == "used"
    assert without.info_["spatial_weight"] == 0
    gain = _mean_pcc(with_space.predict(d["sc_target"]), d["truth"]) - _mean_pcc(without.predict(d["sc_target"]), d["truth"])
    assert gain > 0.05
    # no coordinates, no spatial view (and the record says why)
    blind = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"])
    assert blind.info_["spatial_weight"] == 0 and blind.info_["spatial_view"] == "no spatial coordinates"


def test_spatial_view_stays_out_when_space_carries_no_signal(linear_genes):
    d = linear_genes
    shuffled = np.random.default_rng(0).permutation(np.stack(np.meshgrid(np.arange(20), np.arange(15)), -1).reshape(-1, 2).astype(float))
    blend = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"], st_coords=shuffled)
    assert blend.info_["spatial_weight"] == 0 and blend.info_["spatial_view"] == "not chosen"


def test_choices_do_not_depend_on_the_target_genes(smooth_tissue):
    d = smooth_tissue
    first = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"], st_coords=d["coords"])
    other = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"], st_coords=d["coords"], sc_target=d["sc_target"][:, ::-1] * 3)
    assert first.info_ == other.info_


def test_closed_form_blend_score_equals_the_pcc_of_the_blend():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(50, 7))
    views = [truth + rng.normal(scale=s, size=truth.shape) for s in (0.5, 1.0, 2.0, 3.0)]
    cov, target_cov = _covariances(views, zscore(truth))
    w = np.array([0.3, 0.2, 0.4, 0.1])
    direct = _mean_pcc(sum(wi * v for wi, v in zip(w, views)), truth)
    assert _blend_pcc(w, cov, target_cov) == pytest.approx(direct, rel=1e-9)


def test_neighbour_graph_averages_each_spot_over_its_nearest_other_spots():
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    graph = neighbour_graph(coords, n_neighbours=1).toarray()
    np.testing.assert_allclose(graph.sum(axis=1), 1.0)
    assert np.all(np.diag(graph) == 0)
    assert graph[3, 2] == 1.0 and graph[0, 1] == 1.0
    coincident = neighbour_graph(np.zeros((3, 2)), n_neighbours=2).toarray()
    assert np.all(np.diag(coincident) == 0) and np.allclose(coincident.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="at least 2 spots"):
        neighbour_graph(np.zeros((1, 2)), n_neighbours=4)


def test_bootstrap_intervals_keep_their_coverage_on_demo_heldout_genes():
    """Refits that keep the kNN graph (and resample only the cheap parts) still give 5-95 %
    intervals that hold the true held-out value about 90 % of the time."""
    from causalged.research.benchmark import prepare
    from causalged.evaluation.crossval import fit_predict, fold_inputs

    _, sc_data, st_data, split = prepare("demo", seed=0, n_folds=5)
    covered = []
    for fold in range(split["n_folds"]):
        inputs = fold_inputs(sc_data, st_data, split, fold)
        _, (low, high), _ = fit_predict("knn_ridge_blend", inputs, params={"seed": 0}, n_samples=20, seed=0)
        covered.append(((inputs["truth"] >= low) & (inputs["truth"] <= high)).mean(axis=0))
    assert abs(np.mean(np.concatenate(covered)) - 0.90) <= 0.05


def test_stratified_noise_gives_exact_interval_quantiles_at_every_entry():
    from causalged.methods.blend import stratified_normal

    draws = stratified_normal((20, 30, 4), rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.quantile(draws, 0.95, axis=0), 1.6449, atol=1e-3)
    np.testing.assert_allclose(np.quantile(draws, 0.05, axis=0), -1.6449, atol=1e-3)
    assert not np.allclose(draws[:, 0, 0], draws[:, 1, 0])  # each entry in its own random order


def test_search_on_a_spot_subset_above_the_limit_still_finds_the_spatial_view(smooth_tissue, monkeypatch):
    import causalged.methods.blend as blend_module

    d = smooth_tissue
    monkeypatch.setattr(blend_module, "MAX_INNER_SPOTS", 300)
    blend = get_imputer("knn_ridge_blend").fit(d["sc_train"], d["st_train"], st_coords=d["coords"])
    assert blend.info_["inner_spots"] == 300 and blend.info_["spatial_weight"] > 0
    pred = blend.predict(d["sc_target"])
    assert pred.shape == d["truth"].shape  # the final fit covers every spot
    samples = blend.predict_samples(d["sc_target"], n_samples=4)
    assert samples.shape == (4, *d["truth"].shape) and np.isfinite(samples).all()
