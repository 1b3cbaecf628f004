"""DSC, summary statistics, the paper's tables and per-case evaluation with stub engines."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from engine_stubs import SHAPE, StubModel, make_volume, organ_case  # noqa: E402

from rstn_core.config import DataConfig, InferenceConfig  # noqa: E402
from rstn_core.evaluation.crossval import CaseResult, evaluate_case, first_round_reaching  # noqa: E402
from rstn_core.evaluation.metrics import dsc  # noqa: E402
from rstn_core.evaluation.stats import describe, paired_comparison  # noqa: E402
from rstn_core.evaluation.tables import summarize, to_markdown, write_results  # noqa: E402
from rstn_core.inference.convergence import StopReason  # noqa: E402
from rstn_core.inference.engine import RSTNEngine  # noqa: E402
from rstn_core.types import ALL_VIEWS, Case, View  # noqa: E402


@pytest.mark.parametrize(
    "a, b, expected",
    [([1, 1, 0, 0], [1, 0, 1, 0], 0.5), ([0, 0], [0, 0], 1.0), ([1, 0], [0, 0], 0.0), ([1, 1, 1], [1, 1, 0], 0.8)],
)
def test_dsc_hand_computed(a, b, expected):
    assert dsc(np.array(a, bool), np.array(b, bool)) == pytest.approx(expected)


def test_dsc_refuses_different_shapes():
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        dsc(np.zeros(2, bool), np.zeros(3, bool))


def test_describe_and_paired_comparison():
    d = describe([0.8, 0.9, 0.7])
    assert d["mean"] == pytest.approx(0.8) and d["std"] == pytest.approx(0.1) and d["max"] == 0.9 and d["min"] == 0.7
    a = {"x": 0.8, "y": 0.9, "z": 0.7, "w": 0.5}
    b = {"x": 0.75, "y": 0.95, "z": 0.55, "v": 0.1}
    c = paired_comparison(a, b)
    assert (c["n"], c["wins"], c["losses"], c["ties"]) == (3, 2, 1, 0)
    assert c["largest_gain"]["case"] == "z" and c["largest_gain"]["difference"] == pytest.approx(0.15)
    assert c["largest_deficit"]["case"] == "y" and c["largest_deficit"]["difference"] == pytest.approx(-0.05)
    expected = stats.ttest_rel([0.8, 0.9, 0.7], [0.75, 0.95, 0.55])
    assert c["t"] == pytest.approx(expected.statistic) and c["p"] == pytest.approx(expected.pvalue)


def engine(models, **config):
    return RSTNEngine(models, DataConfig(), InferenceConfig(**config))


def test_evaluate_case_oracle_stub_converges_at_round_one_and_pads_curves():
    models = {v: StubModel() for v in ALL_VIEWS}
    r = evaluate_case(engine(models, margin=2, max_rounds=5), organ_case(), "rstn", 0)
    assert r.rounds == 1 and r.converged and r.stopped is StopReason.CONVERGED
    assert r.dsc_per_round == [1.0] * 6 and r.inter_round_dsc == [1.0] * 5
    assert r.rounds_to == {"0.95": 1, "0.99": 1} and r.final_dsc == 1.0


def _nothing(x):
    return torch.full_like(x, -10.0)


@pytest.mark.parametrize("name, models, label, config", [
    ("converges", dict(), None, {}),
    ("empty coarse", dict(coarse=_nothing), None, {}),
    ("empty coarse, empty truth", dict(coarse=_nothing), np.zeros(SHAPE, bool), {}),
    ("empty mask at round 1", dict(refine=_nothing), None, {}),  # the replay said max-rounds here
    ("oracle, empty coarse", dict(coarse=_nothing), None, {"crops_from": "truth"}),
    ("oracle finds nothing", dict(coarse=_nothing, refine=_nothing), None, {"crops_from": "truth"}),
])
def test_cross_validation_replay_agrees_with_the_engine(name, models, label, config):
    """evaluate_case records at stop threshold 1.0 and replays the rule at 0.99; engine.run applies it live.
    Both must name the same round, reason and DSC (an empty Z_t once ended the replay at max_rounds)."""
    case = organ_case(label)
    eng = engine({v: StubModel(**models) for v in ALL_VIEWS}, margin=2, max_rounds=3, **config)
    live = eng.run(case)
    r = evaluate_case(eng, case, "oracle" if config else "rstn", 0, stop_dsc=eng.config.stop_dsc)
    assert (r.rounds, r.stopped, r.final_dsc) == (live.round, live.stopped, live.dsc_vs_truth), name


def test_evaluate_case_records_an_oscillation_as_not_converged():
    hu = np.full(SHAPE, 240.0, dtype=np.float32)
    hu[0, 0, 0] = -100.0
    label = np.zeros(SHAPE, bool)
    label[5:11, 5:11, :] = True

    def square(x):
        out = torch.full_like(x, -10.0)
        out[..., 5:11, 5:11] = 10.0
        return out

    models = {View.AXIAL: StubModel(coarse=square, refine=lambda x: torch.where(x < 0.5, 10.0, -10.0),
                                    saliency=lambda p: p)}
    r = evaluate_case(engine(models, margin=2, max_rounds=3), Case("osc", make_volume(hu), label), "rstn", 1)
    assert r.coarse_dsc == 1.0 and not r.converged and r.rounds == 3 and r.stopped is StopReason.MAX_ROUNDS
    assert len(r.dsc_per_round) == 4 and r.final_dsc == r.dsc_per_round[3]
    assert r.rounds_to == {"0.95": None, "0.99": None}


def result(method, case_id, coarse, curve, inter):
    return CaseResult(method, 0, case_id, coarse, [coarse, *curve], inter, curve[-1], len(curve),
                      first_round_reaching(inter, 0.99) is not None, "converged",
                      {"0.95": first_round_reaching(inter, 0.95), "0.99": first_round_reaching(inter, 0.99)}, 1.0)


def hand_results():
    return [
        result("rstn", "a", 0.70, [0.80], [0.96]),
        result("rstn", "b", 0.60, [0.90], [0.995]),
        result("c2f", "a", 0.65, [0.75], [0.90]),
        result("c2f", "b", 0.55, [0.92], [0.999]),
    ]


def test_summary_tables_hand_computed():
    s = summarize(hand_results())
    assert s["methods"] == ["rstn", "c2f"]
    assert s["dsc"]["rstn"]["mean"] == pytest.approx(0.85)
    assert s["coarse_vs_fine"]["c2f"]["coarse"]["mean"] == pytest.approx(0.60)
    assert s["dsc_per_round"]["rstn"] == pytest.approx([0.65, 0.85])
    assert s["inter_round_dsc"]["rstn"] == {"1": pytest.approx(0.9775)}
    assert s["convergence"]["rstn"]["0.99"] == {"converged": 1, "of": 2, "mean_rounds": 1.0, "not_converged": ["a"]}
    (cmp,) = s["comparisons"]
    assert (cmp["a"], cmp["b"], cmp["wins"], cmp["losses"]) == ("rstn", "c2f", 1, 1)
    assert cmp["largest_gain"] == {"case": "a", "difference": pytest.approx(0.05)}
    (coarse,) = s["coarse_comparisons"]  # joint (RSTN) vs separate (C2F) coarse training: 0.70/0.60 vs 0.65/0.55
    assert (coarse["wins"], coarse["losses"], coarse["n"]) == (2, 0, 2)
    assert coarse["largest_gain"]["difference"] == pytest.approx(0.05)
    md = to_markdown(s)
    assert "| rstn | 2 | 85.00 ± 7.07 | 90.00 | 80.00 |" in md
    assert "joint (RSTN, stage J) vs separate (C2F)" in md
    assert s["dsc_by_fold"]["rstn"]["0"]["mean"] == pytest.approx(0.85)
    assert "per test fold" not in md  # one fold only: no per-fold table
    assert "rstn vs c2f" in md and "Rounds needed to converge" in md


def test_summary_reports_each_fold():
    two_folds = hand_results() + [dataclasses.replace(r, fold=1, case_id=r.case_id + "2", final_dsc=0.5)
                                  for r in hand_results()]
    s = summarize(two_folds)
    assert s["dsc_by_fold"]["c2f"]["1"]["mean"] == pytest.approx(0.5)
    assert s["dsc_by_fold"]["c2f"]["0"]["mean"] == pytest.approx(0.835)
    assert "| c2f | 83.50 | 50.00 |" in to_markdown(s)


def test_write_results_files(tmp_path):
    paths = write_results(hand_results(), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["per_case.csv", "results.json", "results.md"]
    data = json.loads(paths["json"].read_text())
    assert len(data["cases"]) == 4 and data["summary"]["cases"] == {"rstn": 2, "c2f": 2}
    rows = paths["csv"].read_text().splitlines()
    assert rows[0].startswith("method,fold,case_id,coarse_dsc,final_dsc") and len(rows) == 5
