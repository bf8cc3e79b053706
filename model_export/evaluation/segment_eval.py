"""Are the segments useful? `segment_lift`: how well each segment's own best-sellers predict what its members
touch next, against the shop-wide best-sellers, on the time split.

For every segment, its members' user-split queries (model_export.training.protocols.user_split: the items a member
touches after the cutoff that they had never touched) are ranked twice, with the member's past items
excluded: by the segment's popularity among its members in the training period (the shop's popularity breaks
ties and fills the tail, as serve's segment fragment does), and by the shop's popularity alone.
segment_lift = NDCG@10 of the first over NDCG@10 of the second, over all queries; 1.0 means the segments
say nothing about what people want, and one segment scores exactly 1.0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.evaluation.metrics import per_query, rank
from model_export.training.interactions import positive_weights
from model_export.training.protocols import encode, user_split
from model_export.training.training import Trained
from personalization.recommend import RecentWeighting

# Shop-wide popularity only orders items the segment's members never touched (and breaks ties).
TIE_BREAK = 1e-6


def _popularity(frame: pd.DataFrame, position: dict[str, int], n_items: int) -> npt.NDArray[np.float64]:
    weights = positive_weights(frame).to_numpy(dtype=np.float64)
    index = frame["item_id"].map(position)
    known = index.notna().to_numpy() & (weights > 0)
    counts = np.bincount(index[known].astype(np.int64), weights=weights[known], minlength=n_items)
    return np.asarray(counts, dtype=np.float64)


def _ndcg(scores: npt.NDArray[np.float64], queries: Any, n_items: int) -> npt.NDArray[np.float64]:
    row = scores.astype(np.float32)

    def scorer(inputs: sp.csr_matrix) -> npt.NDArray[np.float32]:
        return np.tile(row, (inputs.shape[0], 1))

    return per_query(rank(scorer, queries), queries, n_items)["ndcg@10"]


def segment_lift(frame: pd.DataFrame, cutoff: pd.Timestamp, trained: Trained) -> dict[str, Any]:
    """Overall and per-segment NDCG@10 of segment popularity against shop popularity (module docstring)."""
    index = trained.index
    n_items = len(index)
    users = list(trained.profiles)
    labels = trained.segments.labels(trained.features)
    train = frame[frame["timestamp"] < cutoff]
    shop = _popularity(train, index.position, n_items)
    shop_scores = shop / max(float(shop.max(initial=0.0)), 1.0)
    member_of = dict(zip(users, labels.tolist(), strict=True))
    segment_of_row = train["user_id"].map(member_of)
    ours: list[npt.NDArray[np.float64]] = []
    theirs: list[npt.NDArray[np.float64]] = []
    per_segment: list[dict[str, Any]] = []
    for segment in trained.segments.segments:
        members = {user: trained.profiles[user] for user, label in member_of.items() if label == segment.id}
        protocol = user_split(frame, cutoff, members, limit=len(members) + 1)
        if not protocol.queries:
            per_segment.append({"id": segment.id, "queries": 0, "ndcg@10": None, "shop_ndcg@10": None})
            continue
        queries = encode(protocol, index.position, n_items, RecentWeighting())
        own = _popularity(train[(segment_of_row == segment.id).to_numpy()], index.position, n_items)
        own_scores = own / max(float(own.max(initial=0.0)), 1.0) + TIE_BREAK * shop_scores
        by_segment = _ndcg(own_scores, queries, n_items)
        by_shop = _ndcg(shop_scores, queries, n_items)
        ours.append(by_segment)
        theirs.append(by_shop)
        per_segment.append(
            {
                "id": segment.id,
                "queries": len(queries),
                "ndcg@10": round(float(by_segment.mean()), 4),
                "shop_ndcg@10": round(float(by_shop.mean()), 4),
            }
        )
    segment_ndcg = float(np.concatenate(ours).mean()) if ours else 0.0
    shop_ndcg = float(np.concatenate(theirs).mean()) if theirs else 0.0
    return {
        "segment_lift": round(segment_ndcg / shop_ndcg, 4) if shop_ndcg > 0 else None,
        "segment_ndcg@10": round(segment_ndcg, 4),
        "shop_ndcg@10": round(shop_ndcg, 4),
        "queries": int(sum(len(values) for values in ours)),
        "by_segment": per_segment,
    }


def segments_block(frame: pd.DataFrame, cutoff: pd.Timestamp, trained: Trained) -> dict[str, Any]:
    """The `segments` object of evaluate's JSON line: the model's figures, its segments, and the lift."""
    model = trained.segments
    lift = segment_lift(frame, cutoff, trained)
    return {
        "k": model.k,
        "shares": model.shares,
        "method": model.method,
        "category_weight": model.category_weight,
        "silhouette": round(model.silhouette, 4),
        "davies_bouldin": round(model.davies_bouldin, 4),
        "stability": round(model.stability, 4),
        "min_share": model.min_share,
        "segment_lift": lift.pop("segment_lift"),
        **lift,
        "names": [s.name for s in model.segments],
        "note": model.note,
    }
