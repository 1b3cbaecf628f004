"""The paper's tables from per-case results: Markdown for people, JSON and CSV for programs (SPEC §5).

DSC values are fractions in [0, 1] in JSON/CSV and percentages (2 decimals, as the paper) in Markdown.
Tables: accuracy (mean ± std, max, min; Tables 1–2), coarse vs fine (Table 3), DSC per round,
inter-round DSC after 1, 2, 3, 5, 10 rounds and rounds needed for thr 0.95 / 0.99 (§4.4.2), and
case-by-case comparisons with a paired t-test (§4.3).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rstn_core.atomic import atomic_write_text
from rstn_core.evaluation.crossval import CaseResult
from rstn_core.evaluation.stats import describe, paired_comparison
from rstn_core.inference.convergence import CONVERGENCE_THRESHOLDS
from rstn_core.types import Method

ROUNDS_REPORTED = (1, 2, 3, 5, 10)
COMPARISONS = ((Method.RSTN, Method.C2F), (Method.ORACLE, Method.RSTN), (Method.ORACLE, Method.C2F))
# Round-0 (coarse) DSC, §4.4.1: RSTN's coarse net is trained jointly with the fine net (stage J),
# C2F's separately; both see the same full slices, so their round-0 maps compare the two trainings.
COARSE_COMPARISONS = ((Method.RSTN, Method.C2F),)
CSV_FIELDS = ("method", "fold", "case_id", "coarse_dsc", "final_dsc", "rounds", "converged", "stopped",
              "rounds_to_0.95", "rounds_to_0.99", "seconds", "dsc_per_round", "inter_round_dsc")


def summarize(results: Sequence[CaseResult]) -> dict:
    """Per-case results -> the JSON-able summary behind every table."""
    methods = list(dict.fromkeys(r.method for r in results))
    by = {m: [r for r in results if r.method == m] for m in methods}
    out: dict = {"methods": methods, "cases": {m: len(v) for m, v in by.items()}, "dsc": {}, "coarse_vs_fine": {},
                 "dsc_per_round": {}, "inter_round_dsc": {}, "convergence": {}, "comparisons": [],
           "coarse_comparisons": [], "dsc_by_fold": {}}
    for m, rs in by.items():
        out["dsc"][m] = describe([r.final_dsc for r in rs])
        folds = sorted({r.fold for r in rs})
        out["dsc_by_fold"][m] = {str(k): describe([r.final_dsc for r in rs if r.fold == k]) for k in folds}
        out["coarse_vs_fine"][m] = {"coarse": describe([r.coarse_dsc for r in rs]),
                                    "fine": describe([r.final_dsc for r in rs])}
        longest = min(len(r.dsc_per_round) for r in rs)
        out["dsc_per_round"][m] = [float(np.mean([r.dsc_per_round[t] for r in rs])) for t in range(longest)]
        inter_len = min(len(r.inter_round_dsc) for r in rs)
        out["inter_round_dsc"][m] = {str(k): float(np.mean([r.inter_round_dsc[k - 1] for r in rs]))
                                     for k in ROUNDS_REPORTED if k <= inter_len}
        conv = {}
        for thr in CONVERGENCE_THRESHOLDS:
            reached = [r.rounds_to[str(thr)] for r in rs if r.rounds_to[str(thr)] is not None]
            conv[str(thr)] = {"converged": len(reached), "of": len(rs),
                              "mean_rounds": float(np.mean(reached)) if reached else None,
                              "not_converged": sorted(r.case_id for r in rs if r.rounds_to[str(thr)] is None)}
        out["convergence"][m] = conv
    for a, b in COMPARISONS:
        if a in by and b in by:
            cmp = paired_comparison({r.case_id: r.final_dsc for r in by[a]}, {r.case_id: r.final_dsc for r in by[b]})
            out["comparisons"].append({"a": a, "b": b, **cmp})
    for a, b in COARSE_COMPARISONS:
        if a in by and b in by:
            cmp = paired_comparison({r.case_id: r.coarse_dsc for r in by[a]},
                                    {r.case_id: r.coarse_dsc for r in by[b]})
            out["coarse_comparisons"].append({"a": a, "b": b, **cmp})
    return out


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows), ""]


def _comparison_table(comparisons: Sequence[dict]) -> list[str]:
    rows = []
    for c in comparisons:
        gain = "–" if c["largest_gain"] is None else (
            f"+{_pct(c['largest_gain']['difference'])} ({c['largest_gain']['case']})")
        deficit = "–" if c["largest_deficit"] is None else (
            f"{_pct(c['largest_deficit']['difference'])} ({c['largest_deficit']['case']})")
        p = "–" if c["p"] is None else f"{c['p']:.3g}"
        rows.append([f"{c['a']} vs {c['b']}", str(c["n"]), f"{c['wins']}/{c['losses']}/{c['ties']}", gain, deficit, p])
    return _table(["comparison", "cases", "wins/losses/ties", "largest gain", "largest deficit", "paired t-test p"],
                  rows)


def to_markdown(summary: dict) -> str:
    """The paper's tables as Markdown (DSC in %)."""
    methods = summary["methods"]
    lines = ["# Cross-validation results", ""]
    lines += ["## Accuracy (DSC, %)", ""]
    lines += _table(["method", "cases", "mean ± std", "max", "min"], [
        [m, str(summary["cases"][m]), f"{_pct(d['mean'])} ± {_pct(d['std'])}", _pct(d["max"]), _pct(d["min"])]
        for m, d in ((m, summary["dsc"][m]) for m in methods)])
    folds = sorted({k for m in methods for k in summary.get("dsc_by_fold", {}).get(m, {})}, key=int)
    if len(folds) > 1:
        lines += ["## Mean DSC per test fold (%)", ""]
        lines += _table(["method", *(f"fold {k}" for k in folds)], [
            [m, *(_pct(summary["dsc_by_fold"][m][k]["mean"]) if k in summary["dsc_by_fold"][m] else "–"
                  for k in folds)] for m in methods])
    lines += ["## Coarse vs fine (DSC, %)", ""]
    lines += _table(["method", "coarse (round 0)", "fine (final)"], [
        [m, f"{_pct(c['coarse']['mean'])} ± {_pct(c['coarse']['std'])}",
         f"{_pct(c['fine']['mean'])} ± {_pct(c['fine']['std'])}"]
        for m, c in ((m, summary["coarse_vs_fine"][m]) for m in methods)])
    rounds = max((len(v) for v in summary["dsc_per_round"].values()), default=0)
    lines += ["## Mean DSC per round (%)", ""]
    lines += _table(["method", *(f"t={t}" for t in range(rounds))], [
        [m, *(_pct(v) for v in summary["dsc_per_round"][m])] + ["–"] * (rounds - len(summary["dsc_per_round"][m]))
        for m in methods])
    lines += ["## Mean inter-round DSC after r rounds", ""]
    lines += _table(["method", *(f"r={k}" for k in ROUNDS_REPORTED)], [
        [m, *(f"{summary['inter_round_dsc'][m][str(k)]:.4f}" if str(k) in summary["inter_round_dsc"][m] else "–"
              for k in ROUNDS_REPORTED)] for m in methods])
    lines += ["## Rounds needed to converge", ""]
    rows = []
    for m in methods:
        for thr, c in summary["convergence"][m].items():
            mean = "–" if c["mean_rounds"] is None else f"{c['mean_rounds']:.2f}"
            rows.append([m, thr, f"{c['converged']}/{c['of']}", mean, ", ".join(c["not_converged"]) or "–"])
    lines += _table(["method", "thr", "converged", "mean rounds", "not converged"], rows)
    if summary["comparisons"]:
        lines += ["## Case-by-case comparisons (final DSC)", ""]
        lines += _comparison_table(summary["comparisons"])
    if summary.get("coarse_comparisons"):
        lines += ["## Coarse stage: joint (RSTN, stage J) vs separate (C2F) training, round-0 DSC", ""]
        lines += _comparison_table(summary["coarse_comparisons"])
    return "\n".join(lines)


def per_case_csv(results: Sequence[CaseResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({
            "method": r.method, "fold": r.fold, "case_id": r.case_id, "coarse_dsc": f"{r.coarse_dsc:.6f}",
            "final_dsc": f"{r.final_dsc:.6f}", "rounds": r.rounds, "converged": r.converged, "stopped": r.stopped,
            "rounds_to_0.95": "" if r.rounds_to["0.95"] is None else r.rounds_to["0.95"],
            "rounds_to_0.99": "" if r.rounds_to["0.99"] is None else r.rounds_to["0.99"],
            "seconds": f"{r.seconds:.3f}",
            "dsc_per_round": " ".join(f"{v:.6f}" for v in r.dsc_per_round),
            "inter_round_dsc": " ".join(f"{v:.6f}" for v in r.inter_round_dsc),
        })
    return buffer.getvalue()


def write_results(results: Sequence[CaseResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.md``, ``results.json`` (summary + per case) and ``per_case.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    paths = {"markdown": out / "results.md", "json": out / "results.json", "csv": out / "per_case.csv"}
    atomic_write_text(paths["markdown"], to_markdown(summary))
    atomic_write_text(paths["json"], json.dumps({"summary": summary, "cases": [r.to_dict() for r in results]},
                                            indent=2) + "\n")
    atomic_write_text(paths["csv"], per_case_csv(results))
    return paths
