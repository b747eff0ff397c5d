"""Metric functions against values worked out by hand (method.md section 5)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from causalged.evaluation import metrics as M


def test_pcc_by_hand():
    # x = [1, 2, 3], y = [1, 2, 4]: dx = [-1, 0, 1], dy = [-4/3, -1/3, 5/3]
    # cov = (4/3 + 0 + 5/3) / 3 = 1; sx = sqrt(2/3); sy = sqrt((16 + 1 + 25) / 27) = sqrt(14/9)
    expected = 1 / (math.sqrt(2 / 3) * math.sqrt(14 / 9))
    assert M.pcc([1, 2, 3], [1, 2, 4])[0] == pytest.approx(expected)
    assert M.pcc([1, 2, 3], [3, 2, 1])[0] == pytest.approx(-1.0)


def test_rmse_is_rmse_of_zscores_and_equals_sqrt_2_1_minus_pcc():
    x, y = np.array([1.0, 2, 3]), np.array([1.0, 2, 4])
    zx = (x - 2) / math.sqrt(2 / 3)
    zy = (y - 7 / 3) / math.sqrt(14 / 9)
    expected = math.sqrt(np.mean((zx - zy) ** 2))
    assert M.rmse(x, y)[0] == pytest.approx(expected)
    assert M.rmse(x, y)[0] == pytest.approx(math.sqrt(2 * (1 - M.pcc(x, y)[0])))


def test_ssim_global_form_by_hand():
    # pred [1, 2] -> /max -> [0.5, 1]; truth [1, 3] -> /max -> [1/3, 1]
    mp, mt = 0.75, 2 / 3
    sp_, st_ = 0.25, 1 / 3  # population SDs
    cov = ((0.5 - mp) * (1 / 3 - mt) + (1 - mp) * (1 - mt)) / 2
    c1, c2 = 0.01**2, 0.03**2
    c3 = c2 / 2
    expected = ((2 * mp * mt + c1) / (mp**2 + mt**2 + c1)) * ((2 * sp_ * st_ + c2) / (sp_**2 + st_**2 + c2)) * ((cov + c3) / (sp_ * st_ + c3))
    assert M.ssim([1.0, 2.0], [1.0, 3.0])[0] == pytest.approx(expected)
    assert M.ssim([1.0, 2.0, 5.0], [2.0, 4.0, 10.0])[0] == pytest.approx(1.0)  # same shape after max-scaling


def test_js_by_hand():
    assert M.js([1.0, 0.0], [0.0, 1.0])[0] == pytest.approx(math.log(2))  # disjoint supports: ln 2
    assert M.js([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])[0] == pytest.approx(0.0)  # scale-free
    # P = [1, 2, 1] / 4, Q = [1, 1, 2] / 4, M = [2, 3, 3] / 8
    p, q, m = np.array([0.25, 0.5, 0.25]), np.array([0.25, 0.25, 0.5]), np.array([0.25, 0.375, 0.375])
    expected = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert M.js([1.0, 2.0, 1.0], [1.0, 1.0, 2.0])[0] == pytest.approx(expected)


def test_constant_vectors_are_nan_with_a_warning():
    pred = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])  # gene 0 constant
    truth = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 4.0]])
    with pytest.warns(M.ConstantVectorWarning):
        scores = M.score_genes(pred, truth, genes=["a", "b"])
    assert scores.loc["a"].isna().all()
    assert scores.loc["b"].notna().all()
    with pytest.warns(M.ConstantVectorWarning):
        assert np.isnan(M.pcc([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])[0])


def test_paper_variants_are_different_and_by_hand():
    out = M.paper_metrics([0.0, 1.0], [1.0, 0.0])
    assert out["js"][0] == pytest.approx(math.sqrt(math.log(2)))  # sqrt of JS
    assert out["rmse"][0] == pytest.approx(1.0 + 1.0)  # sqrt(MSE) + 1 on min-max scaled vectors
    scores = M.score_genes([[0.0], [1.0], [3.0]], [[1.0], [2.0], [2.5]], metric_set="paper")
    assert list(scores.columns) == list(M.METRICS)


def test_accuracy_score_ranks_over_methods():
    summary = pd.DataFrame({"pcc": [0.3, 0.2, 0.1], "ssim": [0.3, 0.1, 0.2], "rmse": [1.0, 1.1, 1.2], "js": [0.2, 0.3, 0.1]}, index=["a", "b", "c"])
    score = M.accuracy_score(summary)
    # ranks (3 = best): a: 3, 3, 3, 2 -> 2.75; b: 2, 1, 2, 1 -> 1.5; c: 1, 2, 1, 3 -> 1.75
    assert score.to_dict() == pytest.approx({"a": 2.75, "b": 1.5, "c": 1.75})
