"""A blend of the two families validation ranked first: score = s_a score_a + s_b score_b, each family's scores
first brought to a common scale (the typical gap between an item's best answer and its median one), with the
share between them chosen on the validation split by the same criterion as everything else.

It exports as the same graph, exactly: the neighbour lists sit side by side (the scatter adds them), the
priors and category parts add, and two factor models become one by putting their factors side by side
(F = [F_a | F_b], Q = [s_a f_a Q_a | s_b f_b Q_b], so F_j . sum w Q = s_a f_a F_a,j . .. + s_b f_b F_b,j . ..).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from model_export.recommenders.base import Recommender
from model_export.training.recs import Floats, RecsData, RecsModel

if TYPE_CHECKING:
    from model_export.training.tuning import Trials

SHARES = (0.25, 0.5, 0.75)
# Items whose one-item histories set a model's scale: enough for a stable mean, cheap at any catalog size.
SCALE_ITEMS = 200


def typical_gap(model: RecsModel) -> float:
    """Mean, over one-item histories spread over the catalog, of the best score minus the median score."""
    n_items = model.n_items
    items = np.unique(np.linspace(0, n_items - 1, min(SCALE_ITEMS, n_items)).astype(np.int64))
    inputs = sp.csr_matrix(
        (np.ones(items.size, dtype=np.float32), (np.arange(items.size), items)), (items.size, n_items)
    )
    scores = model.scores(inputs)
    scores[np.arange(items.size), items] = np.nan
    gap = np.nanmax(scores, axis=1) - np.nanmedian(scores, axis=1)
    found = float(np.mean(gap)) if gap.size else 0.0
    return found if found > 0 else 1.0


def _side_by_side(a: Floats | None, b: Floats | None) -> Floats | None:
    if a is None:
        return b
    if b is None:
        return a
    return np.ascontiguousarray(np.hstack([a, b]), dtype=np.float32)


def combine(a: RecsModel, b: RecsModel, share: float, params: dict[str, Any]) -> RecsModel:
    """share x a + (1 - share) x b, each on its typical scale, as one model of the exported shape."""
    wa = np.float32(share / typical_gap(a))
    wb = np.float32((1.0 - share) / typical_gap(b))
    query_a = (
        None
        if a.factors is None
        else wa * np.float32(a.factor_weight) * (a.query_factors if a.query_factors is not None else a.factors)
    )
    query_b = (
        None
        if b.factors is None
        else wb * np.float32(b.factor_weight) * (b.query_factors if b.query_factors is not None else b.factors)
    )
    category_prior = None
    codes, count = None, 0
    for model, weight in ((a, wa), (b, wb)):
        if model.item_category is not None and model.category_prior is not None:
            codes, count = model.item_category, model.n_categories
            part = weight * model.category_prior
            category_prior = part if category_prior is None else category_prior + part
    return RecsModel(
        family=Blend.name,
        params=params,
        item_ids=a.item_ids,
        neighbor_idx=np.ascontiguousarray(np.hstack([a.neighbor_idx, b.neighbor_idx])),
        neighbor_sim=np.ascontiguousarray(np.hstack([wa * a.neighbor_sim, wb * b.neighbor_sim]), dtype=np.float32),
        prior=np.asarray(wa * a.prior + wb * b.prior, dtype=np.float32),
        factors=_side_by_side(a.factors, b.factors),
        query_factors=_side_by_side(query_a, query_b),
        factor_weight=1.0,
        item_category=codes,
        category_prior=None if category_prior is None else np.asarray(category_prior, dtype=np.float32),
        n_categories=count,
    )


class Blend(Recommender):
    name = "blend"

    @classmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        # Nothing to try on its own: a blend is made from the other families' best trials (`search`).
        yield from ()

    def build(self, data: RecsData) -> RecsModel:
        from model_export.recommenders import BY_NAME

        first = BY_NAME[self.params["first"]](**self.params["first_params"]).build(data)
        second = BY_NAME[self.params["second"]](**self.params["second_params"]).build(data)
        return combine(first, second, float(self.params["share"]), dict(self.params))

    @classmethod
    def search(cls, data: RecsData, trials: Trials, progress: bool = False) -> None:
        """The two families whose chosen trials (tuning.Trials.chosen) the criterion ranks first, blended at each
        share, with either's recent-items decay. Runs after every other family, so their choices are known."""
        chosen = [trial for family, trial in trials.chosen.items() if family != cls.name]
        ranked = sorted(chosen, key=lambda t: trials.score(t.metrics), reverse=True)
        if len(ranked) < 2:
            return
        first, second = ranked[0], ranked[1]
        decays = dict.fromkeys([float(first.params.get("decay", 0.7)), float(second.params.get("decay", 0.7))])
        measured = []
        for share in SHARES:
            for decay in decays:
                params = {
                    "first": first.family,
                    "first_params": {**first.params, "decay": decay},
                    "second": second.family,
                    "second_params": {**second.params, "decay": decay},
                    "share": share,
                    "decay": decay,
                }
                measured.append(trials.measure(cls.name, params, cls(**params).build(data)))
        trials.choose(cls.name, measured[0], measured[1:])
