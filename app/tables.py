"""The rounds table as HTML, one function for the page and the report (rows from
:func:`rstn_core.inference.summary.round_rows`; no Panel)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from rstn_core.inference.summary import format_dsc, round_rows

HEAD = ("<tr><th>round</th><th>inter-round DSC</th><th>DSC vs truth</th><th>voxels</th>"
        "<th>fine windows</th><th>seconds</th><th>stopped</th></tr>")


def rounds_table_html(rounds: Sequence[Any], test_id: str = "rounds-table", title: str = "") -> str:
    """Plain HTML table of the numbers per round (two empty masks read 'both empty', not 1.0)."""
    body = []
    for row in round_rows(rounds):
        inter = "both empty" if row.both_empty else format_dsc(row.inter_round_dsc)
        body.append(f"<tr><td>{row.round}</td><td>{inter}</td><td>{format_dsc(row.dsc_vs_truth, row.dsc_grid)}</td>"
                    f"<td>{row.voxels}</td><td>{row.fine_windows}</td><td>{row.seconds:.2f}</td>"
                    f"<td>{html.escape(row.stopped or '')}</td></tr>")
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return (f"<table class='rounds' data-testid='{test_id}'>{caption}<thead>{HEAD}</thead>"
            f"<tbody>{''.join(body)}</tbody></table>")
