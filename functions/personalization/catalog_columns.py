"""Whole-array steps over the catalog's columns (personalization.catalog): grouping items by a code, medians of
sorted runs, the catalog-order check. numpy, with no Python object per item."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# Codes of an item without a category or brand.
NONE = -1


def floats(values: list[float]) -> npt.NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def codes(values: list[int]) -> npt.NDArray[np.int32]:
    return np.asarray(values, dtype=np.int32).reshape(-1)


def stable_by_code(codes: npt.NDArray[np.integer[Any]]) -> tuple[npt.NDArray[np.intp], npt.NDArray[Any]]:
    """(the order that groups `codes`, keeping each group's original order; the codes in that order)."""
    # A stable sort of 16-bit codes is numpy's radix sort: a 500,000-item catalog's groups in some 10 ms, not 60.
    narrow = codes.astype(np.int16) if int(codes.max()) < 2**15 else codes
    order = np.argsort(narrow, kind="stable")
    return order, codes[order]


def middle(ascending: npt.NDArray[np.float64], starts: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
    """The median of each run of `ascending` (runs begin at `starts`, each sorted), as numpy.median computes
    it: the middle value, or the mean of the two middle ones."""
    ends = np.r_[starts[1:], ascending.size]
    low, high = starts + (ends - starts - 1) // 2, starts + (ends - starts) // 2
    with np.errstate(over="ignore"):
        pair: npt.NDArray[np.float64] = (ascending[low] + ascending[high]) / 2
    return np.where(low == high, ascending[low], pair)


def groups(codes: npt.NDArray[np.int32]) -> list[tuple[int, list[int]]]:
    """(code, its positions ascending) for every code but NONE, in the order each code first appears."""
    if codes.size == 0:
        return []
    order, ordered = stable_by_code(codes)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = [*starts[1:].tolist(), int(codes.size)]
    groups = [(int(ordered[start]), order[start:end]) for start, end in zip(starts.tolist(), ends, strict=True)]
    groups.sort(key=lambda group: int(group[1][0]))  # first appearance: stable sort keeps positions ascending
    return [(code, where.tolist()) for code, where in groups if code != NONE]


def in_order(ids: list[str], popularity: list[float]) -> bool:
    """Descending popularity, ties by ascending id: the order the trainer writes."""
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.size < 2:
        return True
    step = np.diff(pop)
    if (step > 0).any():
        return False
    return all(ids[where] < ids[where + 1] for where in np.flatnonzero(step == 0).tolist())
