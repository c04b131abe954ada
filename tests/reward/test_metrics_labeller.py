from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from sarm2_gym.reward.evaluation import EpisodeScores, _group_metrics
from sarm2_gym.reward.labeller import labels_from_steps_to_go, smooth_steps_to_go
from sarm2_gym.reward.metrics import (
    classify_rollouts,
    macro_mse,
    rollout_rho,
    spearman,
    value_order_correlation,
)


def test_labeller_math_hand_computed() -> None:
    # s = [1, .5, 0] at frames 0, 2, 4; window 2 -> mean [1, .75, .25], running min unchanged;
    # rho = [-1, .25, .5] -> P = [-1, -.75, -.25] -> +1 and interpolated onto frames 0..5.
    lab = labels_from_steps_to_go(np.array([0, 2, 4]), np.array([1.0, 0.5, 0.0]), 6, window=2)
    np.testing.assert_allclose(lab.progress, [0.0, 0.125, 0.25, 0.5, 0.75, 0.75])
    np.testing.assert_allclose(lab.reward, [0.0, 0.125, 0.125, 0.25, 0.25, 0.0])
    progress, reward = lab  # unpacks as (progress, reward)
    assert progress is lab.progress and reward is lab.reward


def test_labeller_is_monotone_and_non_negative() -> None:
    # A relapse (steps-to-go rising) is flattened by the running minimum: no negative reward.
    lab = labels_from_steps_to_go(
        np.array([0, 1, 2, 3]), np.array([0.8, 0.2, 0.9, 0.9]), 4, window=1
    )
    np.testing.assert_allclose(lab.progress, [0.2, 0.8, 0.8, 0.8])
    assert (lab.reward >= 0).all() and lab.reward[0] == 0
    np.testing.assert_allclose(
        smooth_steps_to_go(np.array([1.0, 0.6, 0.8, 0.2]), 2), [1.0, 0.8, 0.7, 0.5]
    )
    with pytest.raises(ValueError, match="increase"):
        labels_from_steps_to_go(np.array([0, 0]), np.array([1.0, 1.0]), 3)


def test_spearman_voc_and_macro_mse_on_hand_made_inputs() -> None:
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 30, 20])) == pytest.approx(0.5)
    x, y = np.array([1.0, 1, 2, 5]), np.array([1.0, 2, 3, 2])
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert np.isnan(spearman(np.ones(4), np.arange(4.0)))
    assert value_order_correlation(np.array([0.1, 0.2, 0.4])) == pytest.approx(1.0)
    assert value_order_correlation(np.array([0.4, 0.2, 0.1])) == pytest.approx(-1.0)
    # macro: mean of per-episode MSEs (0.5 and 1.0), not the pooled 2/3.
    assert macro_mse([np.zeros(2), np.ones(1)], [np.array([0.0, 1.0]), np.zeros(1)]) == 0.75


def test_rollout_rho_hand_made() -> None:
    final = np.array([0.95, 0.5, 0.1, 0.97])
    assert classify_rollouts(final) == ["success", "partial", "failed", "success"]
    assert rollout_rho(final, ["success", "partial", "failed", "failed"]) == pytest.approx(0.5)
    assert rollout_rho(final[:3], ["success", "partial", "failed"]) == 1.0
    assert np.isnan(rollout_rho(np.zeros(0), []))


def _scores(
    task: str, outcome: str, pred: list[float], true: list[float], wrong: int = 1
) -> EpisodeScores:
    """Hand-made scores whose last ``wrong`` predicted primitives miss the annotation."""
    n = len(pred)
    return EpisodeScores(
        task=task,
        outcome=outcome,
        length=5 * (n - 1) + 1,
        frames=np.arange(n) * 5,
        steps_to_go=1.0 - np.array(pred),
        progress=np.array(true),
        act_pri=np.zeros(n, np.int64),
        stage=np.zeros(n, np.int64),
        primitive=np.array([0] * (n - wrong) + [1] * wrong),
        predicted_stage=None,
        final_progress=pred[-1],
    )


def test_group_metrics_hand_made() -> None:
    scores = [
        _scores("T", "", [0.0, 0.5, 1.0], [0.0, 0.5, 1.0]),  # perfect demo
        _scores("T", "", [0.0, 0.0, 0.0], [0.0, 0.5, 1.0]),  # flat demo: MSE (0 + .25 + 1) / 3
        _scores("T", "success", [0.1, 0.6, 0.95], [0.0, 0.4, 1.0]),
        _scores("T", "failed", [0.3, 0.2, 0.1], [0.1, 0.0, 0.05], wrong=3),
    ]
    m = _group_metrics(scores)
    assert m["demo_mse"] == pytest.approx((0.0 + 1.25 / 3) / 2)
    # Primitive accuracy counts demonstrations and rollouts apart.
    assert m["primitive_acc"] == pytest.approx(4 / 6)
    assert m["primitive_acc_rollouts"] == pytest.approx(2 / 6)
    assert m["rollout_rho"] == pytest.approx(1.0)  # 0.95 -> success, 0.1 -> failed
    assert m["rollout_spearman"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["voc"] == pytest.approx(1.0)  # the flat demo has no order and is skipped
    assert m["n_demos"] == 2 and m["n_rollouts"] == 2
