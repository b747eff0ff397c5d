"""Causal analysis (causalged/causality.py): the F-test, the planted spatial effect, the linearization, outputs, bad input."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from causalged import causality as c
from causalged.steps import causality as causality_step
from causalged.errors import InputError


def _grid(rows: int, cols: int) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    return np.column_stack([xx.ravel(), yy.ravel()]).astype(float)


def test_f_test_equals_hand_computed():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 10, (40, 2))  # no ties: the 4 nearest spots are unambiguous
    x = rng.gamma(2.0, 1.0, (len(coords), 3))
    genes = ["A", "B", "C"]
    nb = c.spatial_neighbors(coords, n_neighbors=4)
    table = c.granger_test(x, nb, genes=genes)
    # by hand: the lag is the mean over the 4 nearest other spots; then two least-squares fits
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    lag = np.array([x[np.argsort(dist[s])[:4]].mean(axis=0) for s in range(len(coords))])
    np.testing.assert_allclose(np.asarray(nb @ x), lag)
    a, b = 0, 1
    n = len(x)
    restricted = np.column_stack([np.ones(n), lag[:, b]])
    full = np.column_stack([restricted, lag[:, a]])
    rss_r = np.sum((x[:, b] - restricted @ np.linalg.lstsq(restricted, x[:, b], rcond=None)[0]) ** 2)
    rss_f = np.sum((x[:, b] - full @ np.linalg.lstsq(full, x[:, b], rcond=None)[0]) ** 2)
    f = (rss_r - rss_f) / (rss_f / (n - 3))
    row = table[(table.source == "A") & (table.target == "B")].iloc[0]
    assert row.statistic == pytest.approx(f, rel=1e-9)
    assert row.p_value == pytest.approx(stats.f.sf(f, 1, n - 3), rel=1e-9)
    assert list(table.columns) == c.COLUMNS and len(table) == 6
    np.testing.assert_allclose(table.q_value, stats.false_discovery_control(table.p_value, method="bh"))


def test_lag_is_mean_of_nearest_other_spots():
    coords = np.array([[0.0, 0], [1, 0], [3, 0], [7, 0], [15, 0]])
    nb = c.spatial_neighbors(coords, n_neighbors=1).toarray()
    assert np.allclose(np.diag(nb), 0)
    assert nb[0, 1] == 1 and nb[2, 1] == 1 and nb[4, 3] == 1


def test_planted_directed_effect_is_found_and_not_reversed():
    """B at a spot follows A in the neighbouring spots: A -> B is found, B -> A is not favoured."""
    rng = np.random.default_rng(1)
    coords = _grid(30, 30)
    nb = c.spatial_neighbors(coords, n_neighbors=8)
    a = rng.normal(size=len(coords))
    b = 0.8 * np.asarray(nb @ a) + rng.normal(scale=0.5, size=len(coords))
    noise = rng.normal(size=len(coords))
    table = c.granger_test(np.column_stack([a, b, noise]), nb, genes=["A", "B", "N"])
    pair = table.set_index(["source", "target"])
    assert pair.loc[("A", "B"), "q_value"] < 0.05
    assert pair.loc[("A", "B"), "effect"] > 0
    # the reverse scores lower; it is not null: the neighbourhood graph is symmetric, so lag(B)
    # (B of the neighbours, driven by A of *their* neighbours) carries A at the spot itself
    assert pair.loc[("A", "B"), "statistic"] > 1.2 * pair.loc[("B", "A"), "statistic"]
    assert pair.loc[("A", "B"), "statistic"] == table.statistic.max()
    assert pair.loc[("A", "N"), "q_value"] > 0.05 and pair.loc[("N", "B"), "q_value"] > 0.05


def test_linearization_recovers_w_of_a_linear_model():
    """A linear drift dx/dt = W^T x + u: the steady-state response to u = delta e_a is -W^-1 row a."""
    rng = np.random.default_rng(2)
    g = 6
    w = np.where(rng.random((g, g)) < 0.3, rng.normal(0, 0.5, (g, g)), 0.0)
    np.fill_diagonal(w, -rng.uniform(1.0, 2.0, g))

    def respond(a, delta):
        u = np.zeros(g)
        u[a] = delta
        return np.linalg.solve(-w.T, u)  # steady state x* of W^T x + u = 0

    total = c.total_effects(respond, g, delta=0.5)
    np.testing.assert_allclose(c.direct_effects(total, ridge=0.0, normalize=False), w, atol=1e-10)
    normalized = c.direct_effects(total, ridge=0.0)
    np.testing.assert_allclose(normalized, w / np.abs(np.diag(w))[None, :], atol=1e-10)
    np.testing.assert_allclose(c.direct_effects(total, ridge=1e-6, normalize=False), w, atol=1e-3)  # the default-style regularized inverse


def test_ridge_view_is_linear_and_leave_one_gene_out():
    rng = np.random.default_rng(3)
    sc = rng.gamma(1.0, 1.0, (60, 8))
    st = rng.gamma(1.0, 1.0, (40, 8))
    total, info = c.ridge_total_effects(sc, st)
    assert np.allclose(np.diag(total), 1.0) and total.shape == (8, 8)
    assert info["ridge"] > 0


def _adata(x, coords=None, genes=None):
    data = ad.AnnData(X=np.asarray(x, dtype=np.float32), var=pd.DataFrame(index=genes or [f"G{i}" for i in range(np.shape(x)[1])]))
    data.obs_names = [f"s{i}" for i in range(len(x))]
    if coords is not None:
        data.obsm["spatial"] = coords
    return data


def _outputs_absent(outdir):
    return not outdir.exists() or not any(outdir.iterdir())


@pytest.mark.parametrize("case, match", [
    ("two_genes", "at least 3"),
    ("constant", "vary across spots"),
    ("no_coords", "no spot coordinates"),
])
def test_bad_input_is_a_clear_error_and_nothing_written(case, match, tmp_path):
    rng = np.random.default_rng(4)
    coords = _grid(5, 6)
    x = rng.poisson(3, (30, 4)).astype(float)
    if case == "two_genes":
        data = _adata(x[:, :2], coords)
    elif case == "constant":
        data = _adata(np.ones((30, 4)), coords)
    else:
        data = _adata(x)
    st = tmp_path / "st.h5ad"
    data.write_h5ad(st)
    outdir = tmp_path / "out"
    with pytest.raises(InputError, match=match) as err:
        causality_step.run(sample="s", st=st, outdir=outdir, methods=["granger"])
    assert str(st) in str(err.value) and "Fix:" in str(err.value)
    assert _outputs_absent(outdir)


def _tiny_pair(tmp_path):
    from causalged.preprocess import normalize
    from causalged.simulate import simulate

    sc, st, _ = simulate(size="tiny", seed=0)
    paths = tmp_path / "sc.h5ad", tmp_path / "st.h5ad"
    normalize(sc).write_h5ad(paths[0])
    normalize(st).write_h5ad(paths[1])
    return paths


def test_outputs_and_atomic_writes(tmp_path, monkeypatch):
    sc, st = _tiny_pair(tmp_path)
    out = causality_step.run(sample="tiny", st=st, outdir=tmp_path / "out", sc=sc, max_genes=12)
    table = pd.read_csv(out["csv"])
    assert list(table.columns) == c.COLUMNS
    assert set(table.method) == set(c.METHODS)
    assert len(table) == 3 * 12 * 11
    assert table.loc[table.method == "granger", "q_value"].between(0, 1).all()
    assert "# id: 'causalged_causality'" in out["mqc"].read_text()
    for key in ("heatmap", "network"):
        assert out[key].read_bytes()[:4] == b"\x89PNG"
        assert "id: 'causalged_causality_" in out[f"{key}_mqc"].read_text()
    assert "not computed" in out["json"].read_text()

    # a write that fails half-way leaves neither the final file nor a temporary
    fresh = tmp_path / "fresh"

    def broken(self, path, *args, **kwargs):
        open(path, "w").write("source,tar")
        raise RuntimeError("disk went away")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(RuntimeError):
        causality_step.run(sample="tiny", st=st, outdir=fresh, sc=sc, max_genes=5, methods=["granger"])
    assert not (fresh / "tiny.causality.csv").exists()
    assert not list(fresh.glob(".*.tmp"))


def test_gene_cap_keeps_most_variable():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 6)) * np.array([1, 5, 2, 4, 3, 0.5])
    assert list(c.select_genes(x, list("abcdef"), max_genes=3)) == [1, 3, 4]


def test_spatial_simulation_leaves_the_default_unchanged():
    from causalged.simulate import simulate

    sc_a, st_a, _ = simulate(size="tiny", seed=0)
    sc_b, st_b, _ = simulate(size="tiny", seed=0, grn="cell")
    assert np.array_equal(st_a.X.toarray(), st_b.X.toarray())
    sc_s, st_s, _ = simulate(size="tiny", seed=0, grn="spatial")
    assert st_s.uns["causalged_simulation"]["grn_mode"] == "spatial"
    assert st_s.shape == st_a.shape and sc_s.shape == sc_a.shape


def test_edge_metrics_on_a_perfect_ranking():
    table = pd.DataFrame({"source": ["a", "b", "a", "c"], "target": ["b", "a", "c", "a"], "method": "x",
                          "statistic": [3.0, 1.0, 2.0, 0.5], "p_value": np.nan, "q_value": np.nan, "effect": [1.0, 0.0, 1.0, 0.0]})
    m = c.edge_metrics(table, truth_source=["a", "a"], truth_target=["b", "c"])
    assert m["auprc"] == 1.0 and m["precision"] == 1.0 and m["recall"] == 1.0 and m["direction"] == 1.0
