"""Item-kNN: cosine similarity of items over the users who touched them (weighted view < cart < purchase),
cut to each item's top-M neighbours."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from model_export.recommenders.base import Recommender
from model_export.training.neighbors import top_m
from model_export.training.recs import RecsData, RecsModel

NEIGHBORS = 100
PRIORS = (0.001, 0.02)


class ItemKNN(Recommender):
    name = "item_knn"

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        for prior in PRIORS:
            yield {"prior": prior, "neighbors": NEIGHBORS}

    def build(self, data: RecsData) -> RecsModel:
        m = int(self.params.get("neighbors", NEIGHBORS))
        idx, sim = data.cached(("item_knn", m), lambda: top_m(data.cosine(), m))
        prior = np.float32(self.params.get("prior", PRIORS[0])) * data.prior()
        return RecsModel(self.name, dict(self.params), data.index.ids, idx, sim, prior)
