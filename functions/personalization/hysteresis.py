"""Segments that hold still: a known visitor keeps their segment until another is clearly nearer.

The segment graph returns the distance from the visitor's vector to every segment's centre (standardized
units). The nearest centre wins, except that the visitor's current segment (from the signed segment cookie)
is kept unless the nearest is closer than it by more than `margin`. Distances move at most as far as the
vector does, so a visitor whose vector wanders within margin/2 of any point never returns to a segment it
left: small profile changes near a boundary cannot flip the segment back and forth.
"""

from __future__ import annotations

from collections.abc import Sequence


def nearest(distances: Sequence[float]) -> int:
    """The index of the smallest distance (the first one on a tie, as the graph's ArgMin)."""
    best = 0
    for index, distance in enumerate(distances):
        if distance < distances[best]:
            best = index
    return best


def sticky_segment(distances: Sequence[float], current: int | None, margin: float) -> int:
    """The nearest segment, or `current` while the nearest is not closer than it by more than `margin`."""
    best = nearest(distances)
    if current is None or not 0 <= current < len(distances) or current == best:
        return best
    return best if distances[current] - distances[best] > margin else current
