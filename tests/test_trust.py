"""The expected-accuracy estimator: its features leave a panel gene out, its model is checked by nested CV, and it predicts."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from causalged.evaluation.trust import TRUST_CUTOFFS, expected_accuracy, trust_features, trust_flag
from causalged.methods.kernel_ridge import gene_features


def _reference(n_cells=400, n_genes=12, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    programme = rng.normal(size=(n_cells, 3))
    loadings = rng.normal(size=(3, n_genes)) * np.linspace(2.0, 0.0, n_genes)  # later genes: less structure, more noise
    x = np.log1p(np.exp(programme @ loadings + rng.normal(size=(n_cells, n_genes))))
    return ad.AnnData(X=x.astype(np.float32), var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))


def test_explained_variance_leaves_the_gene_itself_out():
    sc = _reference()
    panel = list(sc.var_names[:8])
    scores = pd.Series(np.linspace(0.8, 0.1, 8), index=panel)
    ridge = 0.1
    feats = trust_features(sc, list(sc.var_names), panel, scores, ridge=ridge)
    ref = gene_features(np.asarray(sc[:, panel].X, dtype=float))
    for j, gene in enumerate(panel):  # explicit ridge on the other panel genes, correlation form
        others = [i for i in range(len(panel)) if i != j]
        c, C = ref[others] @ ref[j], ref[others] @ ref[others].T
        assert np.isclose(feats.loc[gene, "explained"], c @ np.linalg.solve(C + ridge * np.eye(len(others)), c), atol=1e-6)
    target = gene_features(np.asarray(sc[:, ["g10"]].X, dtype=float))[0]
    c = ref @ target
    assert np.isclose(feats.loc["g10", "explained"], c @ np.linalg.solve(ref @ ref.T + ridge * np.eye(len(panel)), c), atol=1e-6)
    # a panel gene's neighbour score never includes its own: a huge own score leaves it unchanged
    bumped = trust_features(sc, panel, panel, scores.mask(scores.index == "g0", 10.0), ridge=ridge)
    assert np.isclose(bumped.loc["g0", "neighbour_pcc"], feats.loc["g0", "neighbour_pcc"])


def test_estimator_learns_the_relation_and_nested_scores_do_not_see_their_own():
    sc = _reference(n_genes=30, seed=1)
    panel = list(sc.var_names[:24])
    feats = trust_features(sc, panel, panel, pd.Series(0.0, index=panel))
    scores = (0.8 * feats["explained"]).rename("pcc")  # accuracy that follows the structure of the gene
    expected, nested = expected_accuracy(sc, scores, list(sc.var_names))
    assert np.corrcoef(nested[panel], scores[panel])[0, 1] > 0.9
    assert (expected - 0.8 * trust_features(sc, list(sc.var_names), panel, scores)["explained"]).abs().max() < 0.1
    # a nested estimate is fitted without the gene's own score: changing that score leaves it unchanged
    _, nested_changed = expected_accuracy(sc, scores.mask(scores.index == panel[0], -0.9), list(sc.var_names))
    same_fold = nested_changed.drop(panel[0])
    assert np.isclose(nested_changed[panel[0]], nested[panel[0]], atol=0.05) and not np.allclose(same_fold, nested.drop(panel[0]))


def test_trust_flags_follow_the_documented_cutoffs():
    flags = trust_flag(pd.Series([TRUST_CUTOFFS["high"], 0.49, TRUST_CUTOFFS["medium"], 0.1, np.nan]))
    assert flags.tolist() == ["high", "medium", "medium", "low", ""]
