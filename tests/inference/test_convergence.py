"""The stop rule, the inter-round DSC and the replay cross-validation uses (one place, table-driven)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rstn_core.evaluation import metrics
from rstn_core.inference import convergence
from rstn_core.inference.convergence import (
    StopReason,
    first_round_reaching,
    inter_round_dsc,
    pad_curves,
    replay_stop_rule,
    stop_reason,
)

FULL = np.ones((3, 4, 5), bool)
EMPTY = np.zeros((3, 4, 5), bool)


def test_stop_reasons_are_the_strings_json_csv_and_the_app_show():
    assert [r.value for r in StopReason] == ["converged", "max-rounds", "empty-coarse", "empty-mask"]
    assert StopReason.MAX_ROUNDS == "max-rounds" and f"{StopReason.EMPTY_MASK}" == "empty-mask"
    assert json.dumps({"stopped": StopReason.CONVERGED}) == '{"stopped": "converged"}'


def test_inter_round_dsc_is_none_at_round_zero_and_the_dsc_after():
    half = FULL.copy()
    half[:, :2] = False  # 30 of 60 voxels: DSC = 2 * 30 / (60 + 30)
    assert inter_round_dsc(None, FULL) is None
    assert inter_round_dsc(FULL, half) == pytest.approx(2 / 3)
    assert inter_round_dsc(EMPTY, EMPTY) == 1.0  # two empty masks agree


@pytest.mark.parametrize(
    "round_index, mask, inter, crops_from_truth, expected",
    [
        (0, FULL, None, False, None),
        (0, EMPTY, None, False, StopReason.EMPTY_COARSE),
        (0, EMPTY, None, True, None),  # oracle: the truth gives the crops
        (2, EMPTY, 0.0, False, StopReason.EMPTY_MASK),
        (2, EMPTY, 0.0, True, None),
        (2, EMPTY, 1.0, True, StopReason.CONVERGED),  # two empty oracle masks agree
        (3, EMPTY, 0.0, True, StopReason.EMPTY_MASK),  # the oracle's last round
        (2, FULL, 0.99, False, StopReason.CONVERGED),
        (2, FULL, 0.98, False, None),
        (3, FULL, 0.98, False, StopReason.MAX_ROUNDS),
        (3, FULL, 0.995, False, StopReason.CONVERGED),  # convergence is named before max rounds
    ],
)
def test_stop_rule_table(round_index, mask, inter, crops_from_truth, expected):
    reason = stop_reason(round_index, mask, inter, stop_dsc=0.99, max_rounds=3, crops_from_truth=crops_from_truth)
    assert reason is expected


def test_zero_max_rounds_stops_after_the_coarse_round():
    assert stop_reason(0, FULL, None, stop_dsc=0.99, max_rounds=0) is StopReason.MAX_ROUNDS


@pytest.mark.parametrize(
    "dscs, inter, ended, padded_dscs, padded_inter",
    [
        ([0.5, 0.8], [1.0], StopReason.CONVERGED, [0.5, 0.8, 0.8, 0.8], [1.0, 1.0, 1.0]),
        ([0.5, 0.0], [0.0], StopReason.EMPTY_MASK, [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([0.0], [], StopReason.EMPTY_COARSE, [0.0] * 4, [1.0] * 3),
        ([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3], StopReason.MAX_ROUNDS, [0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3]),
    ],
)
def test_pad_curves_table(dscs, inter, ended, padded_dscs, padded_inter):
    assert pad_curves(dscs, inter, ended, max_rounds=3) == (padded_dscs, padded_inter)


@pytest.mark.parametrize(
    "voxels, inter, from_truth, expected",
    [
        ([0], [], False, (0, StopReason.EMPTY_COARSE)),
        ([5, 0], [0.0], False, (1, StopReason.EMPTY_MASK)),  # the engine stops on an empty Z_1 (was max-rounds)
        ([5, 5, 5, 5], [0.9, 0.995, 1.0], False, (2, StopReason.CONVERGED)),
        ([5, 5, 5, 5], [0.9, 0.95, 0.98], False, (3, StopReason.MAX_ROUNDS)),
        ([0, 5, 5], [0.0, 1.0], True, (2, StopReason.CONVERGED)),  # the oracle goes on after an empty Z_0
        ([0, 0], [1.0], True, (1, StopReason.CONVERGED)),  # two empty oracle masks agree
    ],
)
def test_replay_stop_rule_table(voxels, inter, from_truth, expected):
    assert replay_stop_rule(voxels, inter, stop_dsc=0.99, max_rounds=3, crops_from_truth=from_truth) == expected


def test_replay_refuses_a_recording_that_ends_before_the_rule():
    with pytest.raises(ValueError, match="2 recorded rounds end before the stop rule at 0.99"):
        replay_stop_rule([5, 5], [0.5], stop_dsc=0.99, max_rounds=3)


def test_first_round_reaching_is_one_based():
    assert first_round_reaching([0.5, 0.96, 0.999], 0.95) == 2
    assert first_round_reaching([0.5, 0.96, 0.999], 0.99) == 3
    assert first_round_reaching([0.5], 0.99) is None


def test_dsc_is_re_exported_by_evaluation_metrics():
    assert metrics.dsc is convergence.dsc

