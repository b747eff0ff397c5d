"""The Imputer interface, the registry and each method's contract on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from causalged.methods import DEFAULT_METHOD, METHODS, get_imputer
from causalged.arrays import renormalize_log, zscore
from causalged.methods.kernel_ridge import gene_features, gene_kernel, loo_predictions, loo_scores, mean_row_pcc
from causalged.scale import ScaleMap

FAST = ["knn", "kernel_ridge", "kernel_ridge_rbf", "spot_depth", "mean_map", "knn_ridge_blend", "tangram"]


@pytest.fixture(scope="module")
def arrays():
    """Cells and spots built from 3 cell types; spots are mixtures, so genes carry signal."""
    rng = np.random.default_rng(0)
    n_genes, n_types = 24, 3
    profiles = rng.gamma(1.0, 1.0, (n_types, n_genes)) * (rng.random((n_types, n_genes)) < 0.6)
    types = rng.integers(0, n_types, 120)
    sc_counts = rng.poisson(profiles[types] * 4)
    mix = rng.dirichlet(np.full(n_types, 0.3), 80)
    depth = rng.uniform(5, 15, (80, 1))
    st_counts = rng.poisson(mix @ profiles * depth)
    log_norm = lambda c: np.log1p(c / np.maximum(c.sum(1, keepdims=True), 1) * np.median(c.sum(1)))
    train, target = np.arange(18), np.arange(18, 24)
    return {
        "sc_train": log_norm(sc_counts)[:, train], "sc_target": log_norm(sc_counts)[:, target],
        "st_train": log_norm(st_counts[:, train]), "st_counts": st_counts[:, train].astype(float),
        "truth": log_norm(st_counts)[:, target],
    }


def test_registry_names():
    assert DEFAULT_METHOD == "knn_ridge_blend" and METHODS[0] == DEFAULT_METHOD
    assert {"knn", "tangram", "kernel_ridge", "spot_depth", "mean_map", "causalged", "causalged_ar", "causalged_nomask", "causalged_plus",
            "knn_ridge_blend"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown imputation method"):
        get_imputer("magic")


@pytest.mark.parametrize("name", FAST)
def test_fit_predict_shapes_and_scale(arrays, name):
    params = {"epochs": 20} if name == "tangram" else {}
    imputer = get_imputer(name, **params).fit(arrays["sc_train"], arrays["st_train"], st_counts=arrays["st_counts"])
    pred = imputer.predict(arrays["sc_target"])
    assert pred.shape == arrays["truth"].shape
    assert np.all(np.isfinite(pred)) and pred.min() >= 0  # the ST log-normalized scale has no negatives
    samples = imputer.predict_samples(arrays["sc_target"], n_samples=3, seed=1)
    assert samples.shape == (3, *arrays["truth"].shape)


def test_blend_records_alpha_chosen_on_training_genes(arrays):
    blend = get_imputer("knn_ridge_blend").fit(arrays["sc_train"], arrays["st_train"])
    assert 0.0 <= blend.info_["alpha"] <= 1.0
    assert blend.info_["selected_by"] == "inner CV on training genes"
    # the choice does not depend on the genes to be predicted
    again = get_imputer("knn_ridge_blend").fit(arrays["sc_train"], arrays["st_train"], sc_target=arrays["sc_target"])
    assert again.info_["alpha"] == blend.info_["alpha"]
    fixed = get_imputer("knn_ridge_blend", alpha=1.0, k=50, n_pcs=50, ridge_kernel="rbf").fit(arrays["sc_train"], arrays["st_train"])
    knn = get_imputer("knn").fit(arrays["sc_train"], arrays["st_train"])
    np.testing.assert_allclose(fixed.predict(arrays["sc_target"]), knn.predict(arrays["sc_target"]), rtol=1e-5, atol=1e-5)


def test_spot_depth_needs_counts(arrays):
    with pytest.raises(ValueError, match="st_counts"):
        get_imputer("spot_depth").fit(arrays["sc_train"], arrays["st_train"])


def test_closed_form_loo_matches_refitting(arrays):
    x = gene_features(arrays["sc_train"])
    y = arrays["st_train"].T
    k = gene_kernel(x, x, kernel="rbf", gamma=1.0)
    fast = next(loo_predictions(k, y, [0.3]))
    for i in (0, 5):
        keep = np.arange(len(k)) != i
        coef = np.linalg.solve(k[np.ix_(keep, keep)] + 0.3 * np.eye(keep.sum()), y[keep])
        np.testing.assert_allclose(fast[i], k[i, keep] @ coef, rtol=1e-6, atol=1e-8)


def test_renormalize_log_matches_counts_normalization():
    counts = np.array([[1.0, 3.0, 4.0], [2.0, 2.0, 0.0], [5.0, 0.0, 5.0]])
    full = np.log1p(counts / counts.sum(1, keepdims=True) * 10)
    sub = counts[:, :2]
    again = np.expm1(renormalize_log(full[:, :2]))
    # library size now counts only the subset: the same proportions as from raw counts, equal totals
    np.testing.assert_allclose(again / again.sum(1, keepdims=True), sub / sub.sum(1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(again.sum(1), again.sum(1)[0])


def test_scale_map_recovers_a_linear_relation():
    rng = np.random.default_rng(1)
    sc = rng.gamma(2.0, 1.0, (200, 10)) * np.linspace(0.5, 3, 10)
    st = sc[:100] * 2.0
    mean, sd = ScaleMap().fit(sc, st).moments(sc)
    np.testing.assert_allclose(mean, st.mean(0), rtol=0.2)
    np.testing.assert_allclose(sd, st.std(0), rtol=0.2)


def test_model_adapters_wrap_causalged(arrays):
    pytest.importorskip("causalged.model")
    for name in ("causalged", "causalged_nomask", "causalged_plus"):
        imputer = get_imputer(name, epochs=2, device="cpu", n_samples=2, steps=5).fit(arrays["sc_train"], arrays["st_train"])
        pred, samples = imputer.predict_with_samples(arrays["sc_target"], n_samples=2, seed=0)
        assert pred.shape == arrays["truth"].shape and samples.shape == (2, *arrays["truth"].shape)
        assert imputer.info_["causal_mask"] is (name != "causalged_nomask")
        assert imputer.info_["faithful"] is (name != "causalged_plus") and imputer.info_["design"] == name


def test_mean_map_is_one_map_on_each_genes_scale(arrays):
    pred = get_imputer("mean_map").fit(arrays["sc_train"], arrays["st_train"]).predict(arrays["sc_target"])
    corr = np.corrcoef(pred.T)
    assert corr.min() > 0.98  # the same pattern for every gene (up to the clip at 0)
    expected_mean, _ = ScaleMap().fit(arrays["sc_train"], arrays["st_train"]).moments(arrays["sc_target"])
    assert not np.allclose(pred.mean(0), pred.mean(0)[0])  # ... on each gene's own scale
    assert np.corrcoef(pred.mean(0), expected_mean)[0, 1] > 0.9


def test_loo_scores_equal_the_pcc_of_the_loo_predictions(arrays):
    """The ridge selection scores each ridge from residual moments; they must be the mean PCC of the predictions."""
    x = gene_features(arrays["sc_train"])
    y = zscore(arrays["st_train"]).T
    k = gene_kernel(x, x, kernel="rbf", gamma=1.0)
    ridges = [0.01, 0.3, 10.0]
    expected = [mean_row_pcc(pred, y) for pred in loo_predictions(k, y, ridges)]
    np.testing.assert_allclose(list(loo_scores(k, y, ridges)), expected, rtol=1e-9)


def test_default_predict_with_samples_equals_its_two_calls(arrays):
    """The default shares one kNN product and one correlation pass between mean and samples; they must match the separate calls."""
    model = get_imputer("knn_ridge_blend").fit(arrays["sc_train"], arrays["st_train"])
    mean, samples = model.predict_with_samples(arrays["sc_target"], n_samples=4, seed=3)
    np.testing.assert_array_equal(mean, model.predict(arrays["sc_target"]))
    np.testing.assert_array_equal(samples, model.predict_samples(arrays["sc_target"], n_samples=4, seed=3))


def test_blocked_products_equal_the_direct_ones(monkeypatch):
    """Moments and z-scored products in row blocks (and on a subset of columns) are the plain
    numpy results; a resampled ridge fit's pattern (genes drawn twice) is zscore(ST) @ its weights."""
    import causalged.arrays as arrays
    from causalged.methods.kernel_ridge import KernelRidgeImputer, kernel_from_correlation

    monkeypatch.setattr(arrays, "BLOCK_ENTRIES", 64)  # blocks of a few rows
    rng = np.random.default_rng(3)
    x = rng.gamma(1.0, 1.0, (50, 12))
    x[:, 4] = 2.0  # a constant column counts 0
    w = rng.normal(size=(3, 12))
    mean, sd = arrays.column_moments(x)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    np.testing.assert_allclose(sd, x.std(axis=0))
    np.testing.assert_allclose(arrays.standardized_product(x, w, (mean, sd)), zscore(x) @ w.T, atol=1e-12)
    columns = np.array([1, 4, 7, 8])
    sparse_w = np.zeros_like(w)
    sparse_w[:, columns] = w[:, columns]
    np.testing.assert_allclose(arrays.standardized_product(x, w[:, columns], (mean, sd), columns=columns), zscore(x) @ sparse_w.T, atol=1e-12)

    sc_train, st_train = rng.gamma(1.0, 1.0, (40, 12)), x
    model = KernelRidgeImputer(kernel="rbf", ridge=1.0, gamma=1.0).fit_arrays(sc_train, st_train)
    pick = np.array([0, 0, 3, 5, 5, 5, 9, 11])
    refit = model.resampled(pick)
    target_corr = model.correlation(rng.gamma(1.0, 1.0, (40, 2)))
    drawn = kernel_from_correlation(target_corr[:, pick], kernel="rbf", gamma=1.0) @ refit.dual_
    full = np.zeros((2, 12))
    for j, gene in enumerate(pick):
        full[:, gene] += drawn[:, j]
    np.testing.assert_allclose(refit.pattern_from_correlation(target_corr), zscore(st_train) @ full.T, atol=1e-10)


def test_knn_on_a_subset_of_genes_equals_knn_on_a_copy_of_them(monkeypatch):
    """The default's inner folds match cells on some columns of the reference without copying
    them (``genes=``); the neighbours are those of the copied columns, with and without a row sample."""
    import causalged.methods.knn as knn
    from causalged.arrays import column_moments

    rng = np.random.default_rng(0)
    sc, st = rng.gamma(1.0, 1.0, (300, 12)), rng.gamma(1.0, 1.0, (80, 12))
    genes = np.array([0, 2, 3, 5, 7, 8, 11])
    for limit in (10_000, 150):  # the joint PCA on every row, then on a row sample
        monkeypatch.setattr(knn, "MAX_PCA_ROWS", limit)
        copied = knn.knn_weight_grid(sc[:, genes], st[:, genes], ks=(5, 20), n_pcs_grid=(3, 5), seed=1)
        for moments in (None, column_moments(sc[:, genes])):
            taken = knn.knn_weight_grid(sc, st[:, genes], ks=(5, 20), n_pcs_grid=(3, 5), seed=1, genes=genes, sc_moments=moments)
            assert taken.keys() == copied.keys()
            for key in copied:
                np.testing.assert_allclose(taken[key].toarray(), copied[key].toarray(), atol=1e-10)
