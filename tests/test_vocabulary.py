"""The vocabulary (rstn_core.types): mode strings become enum members once, at the edges, and stay plain text
in every file written."""

from __future__ import annotations

import json

import pytest

from rstn_core.commands.common import parse_methods
from rstn_core.config import InferenceConfig, TrainConfig
from rstn_core.errors import RstnError
from rstn_core.types import CropReference, Fusion, Method, ProbDtype, SaliencySource, View


@pytest.mark.parametrize("field, text, member", [
    ("fusion", "VOTE", Fusion.VOTE),
    ("fine_fusion", "mean", Fusion.MEAN),
    ("saliency_source", "view", SaliencySource.VIEW),
    ("view_prob_dtype", "float32", ProbDtype.FLOAT32),
    ("crops_from", "truth", CropReference.TRUTH),
])
def test_config_strings_are_parsed_once_into_members_and_saved_as_plain_text(field, text, member):
    config = InferenceConfig(**{field: text})
    assert getattr(config, field) is member
    saved = config.to_dict()[field]
    assert type(saved) is str and saved == member.value
    assert InferenceConfig.from_dict(config.to_dict()) == config


def test_unknown_words_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="InferenceConfig.saliency_source must be 'fused' or 'view', got 'both'"):
        InferenceConfig(saliency_source="both")
    with pytest.raises(ValueError, match="TrainConfig.method must be 'rstn' or 'c2f', got 'oracle'"):
        TrainConfig(method="oracle")
    with pytest.raises(ValueError, match="unknown saliency source 'x'; expected one of: fused, view"):
        SaliencySource.parse("x")


def test_members_read_as_their_values():
    assert json.dumps({"m": Method.C2F, "v": View.AXIAL}) == '{"m": "c2f", "v": "axial"}'
    assert f"{Method.RSTN}" == "rstn" and repr(Method.ORACLE) == "'oracle'"
    assert TrainConfig(method="c2f").method is Method.C2F


def test_the_oracle_runs_rstn_networks_cropping_from_the_truth():
    assert Method.ORACLE.bundle_method is Method.RSTN and Method.C2F.bundle_method is Method.C2F
    assert Method.ORACLE.crops_from is CropReference.TRUTH and Method.RSTN.crops_from is CropReference.PREDICTION


def test_cli_method_lists_are_parsed_at_the_edge():
    assert parse_methods("RSTN, oracle") == [Method.RSTN, Method.ORACLE]
    with pytest.raises(RstnError, match="--methods: unknown method 'oracle'; expected some of rstn, c2f"):
        parse_methods("rstn,oracle", (Method.RSTN, Method.C2F))


def test_case_results_read_back_from_json_carry_members():
    from rstn_core.evaluation.crossval import CaseResult
    from rstn_core.inference.convergence import StopReason

    saved = json.loads(json.dumps({"method": Method.ORACLE, "fold": 0, "case_id": "c", "coarse_dsc": 0.5,
                                   "dsc_per_round": [0.5], "inter_round_dsc": [], "final_dsc": 0.5, "rounds": 0,
                                   "converged": False, "stopped": StopReason.EMPTY_COARSE, "rounds_to": {},
                                   "seconds": 1.0}))
    result = CaseResult(**saved)
    assert result.method is Method.ORACLE and result.stopped is StopReason.EMPTY_COARSE
