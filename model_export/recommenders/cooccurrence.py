"""Session co-occurrence: j after i within `window` steps of one session counts 1/lag, j before i counts
`backward`/lag, normalized by sqrt(n_i n_j); cut to each item's top-M neighbours."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from model_export.recommenders.base import Recommender
from model_export.training.neighbors import top_m
from model_export.training.recs import RecsData, RecsModel

NEIGHBORS = 100
PRIOR = 0.001


class Cooccurrence(Recommender):
    name = "cooccurrence"

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        for window in (1, 3, 5):
            for backward in (0.0, 0.5, 1.0):
                yield {"window": window, "backward": backward, "prior": PRIOR, "neighbors": NEIGHBORS}

    def build(self, data: RecsData) -> RecsModel:
        window, backward = int(self.params["window"]), float(self.params["backward"])
        m = int(self.params.get("neighbors", NEIGHBORS))
        idx, sim = data.cached(
            ("cooccurrence", window, backward, m), lambda: top_m(data.sequential(window, backward), m)
        )
        prior = np.float32(self.params.get("prior", PRIOR)) * data.prior()
        return RecsModel(self.name, dict(self.params), data.index.ids, idx, sim, prior)
