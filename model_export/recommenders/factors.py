"""A low-rank factor model: PureSVD (Cremonesi et al. 2010). The item factors V are the top right singular
vectors of the user x item matrix; a history x scores x V V^T. In the graph: Gather the recent items' rows,
weight and sum them (the user's vector), MatMul with V^T, TopK. Linear in the catalog, and it links items no
one has combined yet, which neighbour lists cannot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from model_export.recommenders.base import Recommender
from model_export.training.recs import RecsData, RecsModel, no_neighbors

PRIOR = 0.001
DIMENSIONS = (32, 64, 128)


class Factors(Recommender):
    name = "factors"

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        for dimensions in DIMENSIONS:
            yield {"dimensions": dimensions, "prior": PRIOR}

    def build(self, data: RecsData) -> RecsModel:
        # One decomposition at the largest size serves every grid point: its leading vectors are the smaller ones.
        vectors, _ = data.svd(max(DIMENSIONS))
        vectors = np.ascontiguousarray(vectors[:, : int(self.params["dimensions"])])
        idx, sim = no_neighbors(len(data.index))
        prior = np.float32(self.params.get("prior", PRIOR)) * data.prior()
        return RecsModel(self.name, dict(self.params), data.index.ids, idx, sim, prior, vectors, factor_weight=1.0)
