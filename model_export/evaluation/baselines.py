"""The models the exported recommender is compared with, each a batch scorer over the same query inputs.

popularity, popularity within the recent items' categories, item-kNN (cosine over users), session
co-occurrence, ALS from the peer library `implicit` (a dev dependency: evaluation only), and EASE when the
catalog is small enough for its dense item x item inverse. Each has a small grid of its own hyperparameters,
chosen on the validation split like ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from model_export.training.recs import EASE_MAX_ITEMS, RecsData

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Baseline:
    name: str
    grid: list[dict[str, Any]]
    fit: Callable[[RecsData, Mapping[str, Any]], Callable[[sp.csr_matrix], Floats]]


def _popularity(data: RecsData, _: Mapping[str, Any]) -> Callable[[sp.csr_matrix], Floats]:
    prior = data.prior()
    return lambda inputs: np.broadcast_to(prior, (inputs.shape[0], prior.size)).copy()


def _category_popularity(data: RecsData, _: Mapping[str, Any]) -> Callable[[sp.csr_matrix], Floats]:
    """The best-sellers of the recent items' categories (what serve's fallback does with affinities), with
    global popularity after them."""
    prior = data.prior()
    categories = data.categories()
    if categories is None:
        return _popularity(data, {})
    one_hot = categories.one_hot()
    spread = sp.csr_matrix(one_hot.T.multiply(categories.within[None, :]))

    def scores(inputs: sp.csr_matrix) -> Floats:
        by_category = np.asarray(((inputs @ one_hot) @ spread).todense(), dtype=np.float32)
        return by_category + np.float32(1e-3) * prior[None, :]

    return scores


def _similarity_scorer(similarity: sp.csr_matrix) -> Callable[[sp.csr_matrix], Floats]:
    matrix = similarity.tocsr().astype(np.float32)
    return lambda inputs: np.asarray((inputs @ matrix).todense(), dtype=np.float32)


def _item_knn(data: RecsData, _: Mapping[str, Any]) -> Callable[[sp.csr_matrix], Floats]:
    return _similarity_scorer(data.cosine())


def _cooccurrence(data: RecsData, params: Mapping[str, Any]) -> Callable[[sp.csr_matrix], Floats]:
    return _similarity_scorer(data.sequential(int(params["window"]), float(params["backward"])))


def _als(data: RecsData, params: Mapping[str, Any]) -> Callable[[sp.csr_matrix], Floats]:
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit warns when BLAS runs threads of its own beside its own threads; one BLAS thread is its advice.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=float(params["alpha"]),
            iterations=15,
            random_state=0,
            num_threads=1,
        )
        model.fit(data.user_items.astype(np.float32), show_progress=False)
    items = np.asarray(model.item_factors, dtype=np.float32)

    def scores(inputs: sp.csr_matrix) -> Floats:
        # Weights sum to 1 per query; rescaled so the strongest recent item has confidence 1 + alpha.
        peak = np.maximum(inputs.max(axis=1).toarray().ravel(), 1e-12)
        rows = sp.csr_matrix(sp.diags(1.0 / peak) @ inputs, dtype=np.float32)
        with threadpool_limits(1, "blas"):
            users = model.recalculate_user(np.arange(rows.shape[0]), rows)
        return np.asarray(users @ items.T, dtype=np.float32)

    return scores


def _ease(data: RecsData, params: Mapping[str, Any]) -> Callable[[sp.csr_matrix], Floats]:
    weights = data.ease(float(params["l2"]))
    return lambda inputs: np.asarray(inputs @ weights, dtype=np.float32)


def baselines(n_items: int) -> list[Baseline]:
    found = [
        Baseline("popularity", [{}], _popularity),
        Baseline("category_popularity", [{}], _category_popularity),
        Baseline("item_knn", [{}], _item_knn),
        Baseline(
            "cooccurrence",
            [{"window": w, "backward": b} for w in (1, 3, 5) for b in (0.0, 0.5, 1.0)],
            _cooccurrence,
        ),
        Baseline(
            "als",
            [
                {"factors": f, "regularization": r, "alpha": a}
                for f in (32, 64)
                for r in (0.01, 0.1)
                for a in (1.0, 10.0)
            ],
            _als,
        ),
    ]
    if n_items <= EASE_MAX_ITEMS:
        found.append(Baseline("ease", [{"l2": l2} for l2 in (100.0, 500.0, 2000.0)], _ease))
    return found
