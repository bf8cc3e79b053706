"""Popularity: the catalog's best-sellers, the same for everyone. Where repeat best-sellers win (a grocery
shop), it is the bar, and validation may well choose it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from model_export.recommenders.base import Recommender
from model_export.training.recs import RecsData, RecsModel, no_neighbors


class Popularity(Recommender):
    name = "popularity"
    decays: ClassVar[tuple[float, ...]] = (1.0,)

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        yield {}

    def build(self, data: RecsData) -> RecsModel:
        idx, sim = no_neighbors(len(data.index))
        return RecsModel(self.name, {"decay": 1.0, **self.params}, data.index.ids, idx, sim, data.prior())
