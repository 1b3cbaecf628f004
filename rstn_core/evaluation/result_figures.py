"""The evaluation's matplotlib figures: convergence curves, DSC per method, case-by-case scatters.

Every function returns a :class:`matplotlib.figure.Figure` (object-oriented API: no pyplot state);
:func:`write_figures` saves the ones ``rstn evaluate`` writes. ``results``: cross-validation
:class:`~rstn_core.evaluation.crossval.CaseResult` objects or their dicts (``results.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from rstn_core.types import Method

METHOD_COLORS = {Method.RSTN: "#d62728", Method.C2F: "#1f77b4", Method.ORACLE: "#2ca02c"}


def convergence_curves(runs: Mapping[str, Sequence[Any]]) -> Figure:
    """DSC vs truth and inter-round DSC against the round, one line per run.

    ``runs``: name -> RoundStates of one case (or CaseResults' curves: ``dsc_per_round`` /
    ``inter_round_dsc`` lists given as ``{"dsc": [...], "inter": [...]}``). Two axes.
    """
    fig = Figure(figsize=(8.5, 3.4), layout="constrained")
    ax_dsc, ax_inter = fig.subplots(1, 2)
    for name, run in runs.items():
        if isinstance(run, Mapping):
            dscs, inter = list(run.get("dsc", [])), list(run.get("inter", []))
        else:
            dscs, inter = [s.dsc_vs_truth for s in run], [s.inter_round_dsc for s in run][1:]
        color = METHOD_COLORS.get(name.lower())
        if dscs and all(d is not None for d in dscs):
            ax_dsc.plot(range(len(dscs)), [100 * d for d in dscs], "o-", ms=3, label=name, color=color)
        if inter:
            ax_inter.plot(range(1, len(inter) + 1), [100 * d for d in inter], "o-", ms=3, label=name, color=color)
    ax_dsc.set(xlabel="round t", ylabel="DSC vs truth (%)", title="accuracy per round")
    ax_inter.set(xlabel="round t", ylabel="DSC(Z_{t-1}, Z_t) (%)", title="inter-round DSC")
    for thr in (95, 99):
        ax_inter.axhline(thr, color="0.6", lw=0.8, ls=":")
    for ax in (ax_dsc, ax_inter):
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:  # curves drawn (not only the threshold lines)
            ax.legend(fontsize=8)
    return fig


def dsc_boxplot(results: Sequence[Any]) -> Figure:
    """Final (and coarse) DSC per method as box plots with the cases as dots.

    ``results``: :class:`rstn_core.evaluation.crossval.CaseResult` objects or their dicts. One axes.
    """
    rows = [r if isinstance(r, Mapping) else r.to_dict() for r in results]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    groups, labels = [], []
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        if m != Method.ORACLE:
            groups.append([100 * r["coarse_dsc"] for r in mine])
            labels.append(f"{m}\ncoarse")
        groups.append([100 * r["final_dsc"] for r in mine])
        labels.append(f"{m}\nfinal")
    fig = Figure(figsize=(1.4 * max(len(groups), 3) + 1.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if groups:
        ax.boxplot(groups, tick_labels=labels, showmeans=True)
        rng = np.random.default_rng(0)
        for i, values in enumerate(groups, start=1):
            ax.plot(i + rng.uniform(-0.12, 0.12, len(values)), values, "o", ms=3, alpha=0.6, color="0.3")
    ax.set(ylabel="DSC (%)", title=f"DSC per case ({len({r['case_id'] for r in rows})} cases)")
    return fig


def paired_scatter(results: Sequence[Any], a: Method = Method.RSTN, b: Method = Method.C2F,
                   field: str = "final_dsc") -> Figure:
    """Case-by-case DSC of method ``a`` (y) against ``b`` (x), with the diagonal: points above it are
    cases ``a`` wins. ``field``: ``final_dsc`` or ``coarse_dsc``. Cases missing from either are left out.
    One axes; the title counts wins and losses."""
    rows = [r if isinstance(r, Mapping) else r.to_dict() for r in results]
    va = {r["case_id"]: 100 * r[field] for r in rows if r["method"] == a}
    vb = {r["case_id"]: 100 * r[field] for r in rows if r["method"] == b}
    cases = sorted(set(va) & set(vb))
    xs, ys = np.array([vb[c] for c in cases]), np.array([va[c] for c in cases])
    fig = Figure(figsize=(3.8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    top = max(100.0 if not cases else float(max(xs.max(), ys.max())) * 1.05, 1.0)
    ax.plot([0, top], [0, top], color="0.6", lw=0.8, ls="--")
    ax.plot(xs, ys, "o", ms=4, color=METHOD_COLORS.get(a, "0.2"), alpha=0.8)
    wins, losses = int((ys > xs).sum()), int((ys < xs).sum())
    kind = "coarse (round 0)" if field == "coarse_dsc" else "final"
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"{b} {kind} DSC (%)", ylabel=f"{a} {kind} DSC (%)",
           title=f"{a} vs {b}: {wins} win{'' if wins == 1 else 's'}, "
                 f"{losses} loss{'' if losses == 1 else 'es'} ({len(cases)} cases)")
    ax.set_aspect("equal")
    return fig


def mean_curves(results: Sequence[Any]) -> dict[str, dict[str, list[float]]]:
    """Per method, the mean DSC per round and mean inter-round DSC over cases (curves cut to the shortest),
    in the ``{"dsc": [...], "inter": [...]}`` form :func:`convergence_curves` takes."""
    rows = [r if isinstance(r, Mapping) else r.to_dict() for r in results]
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        curves = {}
        for key, field in (("dsc", "dsc_per_round"), ("inter", "inter_round_dsc")):
            n = min(len(r[field]) for r in mine)
            curves[key] = [float(np.mean([r[field][t] for r in mine])) for t in range(n)]
        out[m] = curves
    return out


def write_figures(results: Sequence[Any], out_dir: str | Path) -> dict[str, Path]:
    """The evaluation's figures as PNGs in ``out_dir``, each written atomically: ``dsc_boxplot.png``
    (coarse and final DSC per method), ``convergence.png`` (mean DSC and inter-round DSC per round) and,
    when both methods are present, ``rstn_vs_c2f.png`` (final DSC) and ``rstn_vs_c2f_coarse.png``
    (round 0: joint vs separate coarse training). Returns name -> path."""
    from rstn_core.atomic import atomic_write

    rows = [r if isinstance(r, Mapping) else r.to_dict() for r in results]
    methods = set(r["method"] for r in rows)
    figures = {"dsc_boxplot": dsc_boxplot(rows), "convergence": convergence_curves(mean_curves(rows))}
    if {Method.RSTN, Method.C2F} <= methods:
        figures["rstn_vs_c2f"] = paired_scatter(rows, Method.RSTN, Method.C2F)
        figures["rstn_vs_c2f_coarse"] = paired_scatter(rows, Method.RSTN, Method.C2F, field="coarse_dsc")
    out = Path(out_dir)
    return {name: atomic_write(out / f"{name}.png", lambda tmp, f=fig: f.savefig(tmp, format="png", dpi=100),
                               suffix=".png")
            for name, fig in figures.items()}
