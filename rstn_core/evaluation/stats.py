"""Summary statistics over cases (SPEC §5): mean ± std, paired comparisons with a t-test (§4.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, sample std (ddof=1; 0 for one value), max, min; ``None`` fields for no values."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {"n": 0, "mean": None, "std": None, "max": None, "min": None}
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"n": int(arr.size), "mean": float(arr.mean()), "std": std, "max": float(arr.max()),
            "min": float(arr.min())}


def paired_comparison(a: Mapping[str, float], b: Mapping[str, float]) -> dict:
    """Case-by-case comparison of method A against method B on their common cases.

    Returns wins/losses/ties of A, the largest gain and deficit of A over B (case id and DSC
    difference) and a paired t-test (``scipy.stats.ttest_rel``; t and p are ``None`` below 2 cases
    or when every difference is equal).
    """
    common = sorted(set(a) & set(b))
    diff = np.array([a[c] - b[c] for c in common], dtype=np.float64)
    out: dict = {"n": len(common), "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
                 "ties": int((diff == 0).sum()), "mean_difference": float(diff.mean()) if diff.size else None,
                 "largest_gain": None, "largest_deficit": None, "t": None, "p": None}
    if diff.size:
        best, worst = int(diff.argmax()), int(diff.argmin())
        if diff[best] > 0:
            out["largest_gain"] = {"case": common[best], "difference": float(diff[best])}
        if diff[worst] < 0:
            out["largest_deficit"] = {"case": common[worst], "difference": float(diff[worst])}
    if diff.size >= 2 and np.ptp(diff) > 0:
        test = stats.ttest_rel([a[c] for c in common], [b[c] for c in common])
        out["t"], out["p"] = float(test.statistic), float(test.pvalue)
    return out
