"""The hybrid: neighbours (a blend of EASE over the best-supported items, cosine over users and sequential
session co-occurrence, each on a common scale, cut to top-M), optional smoothed item factors, a category
prior (the recent items' categories times each item's popularity within its category: it reaches the long
tail no co-occurrence covers yet; left out when the data has no categories) and a popularity prior.

It has the most hyperparameters, so it is searched coordinate by coordinate (two rounds) rather than on a
grid: a full grid would be hundreds of fits for little gain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from tqdm import tqdm

from model_export.recommenders.base import DECAYS, Recommender
from model_export.training.neighbors import top_m, unit_scale
from model_export.training.recs import Floats, RecsData, RecsModel

if TYPE_CHECKING:
    from model_export.training.tuning import Trials

SEARCH: dict[str, tuple[Any, ...]] = {
    "decay": DECAYS,
    "category": (0.0, 0.01, 0.05, 0.2, 1.0),
    "blend": (0.0, 0.25, 0.5, 0.75, 1.0),
    "ease": (0.0, 0.25, 0.5, 0.75, 1.0),
    "l2": (100.0, 500.0, 2000.0),
    "window": (1, 3, 5),
    "backward": (0.0, 0.5, 1.0),
    "factors": (0.0, 0.05, 0.2),
    "prior": (0.001, 0.02, 0.1),
}
ROUNDS = 2


@dataclass(frozen=True)
class RecsParams:
    decay: float = 0.7
    category: float = 0.0
    ease: float = 0.0
    l2: float = 500.0
    blend: float = 0.5
    window: int = 3
    backward: float = 0.5
    factors: float = 0.0
    dimensions: int = 64
    prior: float = 0.01
    neighbors: int = 100

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def blended_neighbors(data: RecsData, params: RecsParams) -> tuple[npt.NDArray[np.int32], Floats]:
    """Share `ease` of EASE, the rest split `blend` to cosine and 1 - `blend` to sequential co-occurrence."""
    key = ("hybrid", params.ease, params.l2, params.blend, params.window, params.backward, params.neighbors)

    def make() -> tuple[npt.NDArray[np.int32], Floats]:
        parts = []
        if params.ease > 0:
            parts.append(params.ease * unit_scale(data.ease_neighbors(params.l2)))
        if params.ease < 1 and params.blend > 0:
            parts.append((1.0 - params.ease) * params.blend * unit_scale(data.cosine()))
        if params.ease < 1 and params.blend < 1:
            sequential = data.sequential(params.window, params.backward)
            parts.append((1.0 - params.ease) * (1.0 - params.blend) * unit_scale(sequential))
        return top_m(sp.csr_matrix(sum(parts[1:], parts[0])), params.neighbors)

    return data.cached(key, make)


def _matters(name: str, params: RecsParams, data: RecsData) -> bool:
    """Whether changing `name` can change the model at all (a pointless fit costs as much as a useful one)."""
    if name == "category":
        return data.categories() is not None
    if name == "l2":
        return params.ease > 0
    if name == "blend":
        return params.ease < 1
    if name in {"window", "backward"}:
        return params.ease < 1 and params.blend < 1
    return True


class Hybrid(Recommender):
    name = "hybrid"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.typed = RecsParams(**params)

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        yield RecsParams().to_dict()

    def build(self, data: RecsData) -> RecsModel:
        params = self.typed
        neighbor_idx, neighbor_sim = blended_neighbors(data, params)
        categories = data.categories() if params.category > 0 else None
        return RecsModel(
            family=self.name,
            params=params.to_dict(),
            item_ids=data.index.ids,
            neighbor_idx=neighbor_idx,
            neighbor_sim=neighbor_sim,
            prior=np.float32(params.prior) * data.prior(),
            factors=data.factors(params.dimensions) if params.factors > 0 else None,
            factor_weight=params.factors,
            item_category=None if categories is None else categories.codes,
            category_prior=None if categories is None else np.float32(params.category) * categories.within,
            n_categories=0 if categories is None else categories.count,
        )

    @classmethod
    def search(cls, data: RecsData, trials: Trials, progress: bool = False) -> None:
        """Coordinate search from the defaults: every value of one hyperparameter is tried with the others held,
        and the one the criterion ranks first is kept only if it is clearly better than the current choice
        (tuning.Trials.challenge: by more than the validation questions' noise), so values no validation split
        can tell apart keep the defaults, whichever users the split holds."""
        best = RecsParams()
        incumbent = trials.measure(cls.name, best.to_dict(), cls(**best.to_dict()).build(data))
        total = ROUNDS * sum(len(values) for values in SEARCH.values())
        with tqdm(total=total, desc=f"select: {cls.name}", unit="fit", disable=not progress) as bar:
            for _ in range(ROUNDS):
                for name, values in SEARCH.items():
                    bar.update(len(values))
                    if not _matters(name, best, data):
                        continue
                    candidates = [replace(best, **{name: value}) for value in values]
                    challengers = [
                        trials.measure(cls.name, c.to_dict(), cls(**c.to_dict()).build(data))
                        for c in candidates
                        if c != best
                    ]
                    incumbent = trials.challenge(incumbent, challengers)
                    best = RecsParams(**incumbent.params)
        trials.choose(cls.name, incumbent, [])
