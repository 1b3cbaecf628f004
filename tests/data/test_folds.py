"""rstn_core.data.folds: 4-fold split by sorted id (82 -> 20/20/21/21) and split files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rstn_core.data.folds import fold_cases, kfold_split, load_split, save_split
from rstn_core.errors import DataError

NIH = [f"PANCREAS_{n:04d}" for n in range(1, 83)]


def test_82_cases_make_20_20_21_21():
    folds = kfold_split(reversed(NIH))
    assert [len(f) for f in folds] == [20, 20, 21, 21]
    assert folds[0][0] == "PANCREAS_0001" and folds[-1][-1] == "PANCREAS_0082"
    assert sum(folds, []) == NIH  # contiguous blocks of sorted ids


@given(n=st.integers(1, 200), k=st.integers(1, 10))
def test_sizes_differ_by_at_most_one(n, k):
    ids = [f"c{i:03d}" for i in range(n)]
    if n < k:
        with pytest.raises(DataError, match="cannot make"):
            kfold_split(ids, k)
        return
    folds = kfold_split(ids, k)
    sizes = [len(f) for f in folds]
    assert len(folds) == k and sum(sizes) == n
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes)
    assert sorted(sum(folds, [])) == ids


def test_fold_cases_train_is_the_rest():
    folds = kfold_split(NIH)
    train, test = fold_cases(NIH, folds, 2)
    assert test == folds[2] and len(train) == 82 - 21
    assert not set(train) & set(test)
    with pytest.raises(DataError, match="fold 4 out of range"):
        fold_cases(NIH, folds, 4)


def test_split_file_round_trip_and_validation(tmp_path):
    path = save_split([["b", "a"], ["c"]], tmp_path / "split.json")
    assert load_split(path, case_ids=["a", "b", "c"]) == [["b", "a"], ["c"]]
    (tmp_path / "dup.json").write_text(json.dumps({"folds": [["a"], ["a", "b"]]}))
    with pytest.raises(DataError, match=r"dup\.json.*duplicated case ids \['a'\]"):
        load_split(tmp_path / "dup.json")
    with pytest.raises(DataError, match=r"unknown case ids \['c'\]"):
        load_split(path, case_ids=["a", "b"])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        load_split(tmp_path / "bad.json")


def test_duplicate_ids_refused():
    with pytest.raises(DataError, match=r"duplicated case ids \['a'\]"):
        kfold_split(["a", "b", "a", "c"], 2)
