"""EASE (Steck 2019) over the catalog's best-supported items, each item's top-M weights kept, so it exports
as the same sparse neighbour graph. The dense inverse is bounded by EASE_HEAD_ITEMS, whatever the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from model_export.recommenders.base import Recommender
from model_export.training.neighbors import top_m
from model_export.training.recs import RecsData, RecsModel

NEIGHBORS = 100
PRIOR = 0.001


class Ease(Recommender):
    name = "ease"

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        for l2 in (100.0, 500.0, 2000.0):
            yield {"l2": l2, "prior": PRIOR, "neighbors": NEIGHBORS}

    def build(self, data: RecsData) -> RecsModel:
        l2, m = float(self.params["l2"]), int(self.params.get("neighbors", NEIGHBORS))
        idx, sim = data.cached(("ease", l2, m), lambda: top_m(data.ease_neighbors(l2), m))
        prior = np.float32(self.params.get("prior", PRIOR)) * data.prior()
        return RecsModel(self.name, dict(self.params), data.index.ids, idx, sim, prior)
