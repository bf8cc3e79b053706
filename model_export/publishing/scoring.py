"""Scoring a model version on the user-split protocol of `evaluate`, as serve would run it.

A version is loaded with serve's own loader (personalization.models.load_models): a version serve would refuse
(graph that does not load, index that disagrees with the catalog, another feature schema) is refused here too.
Each version answers the same questions with its own item index and its own recent-items weighting; items it
does not know count as misses, as they would in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from model_export.evaluation.evaluate import run_onnx
from model_export.evaluation.metrics import TopLists, interval, per_query, rank, summarize
from model_export.training.protocols import Protocol, Queries, encode
from personalization.catalog import Catalog
from personalization.features import FEATURE_SCHEMA_VERSION
from personalization.manifest import Manifest
from personalization.models import ModelError, Models, load_models
from personalization.recommend import RecentWeighting


@dataclass(frozen=True, slots=True)
class Scores:
    ndcg: float  # NDCG@10, the gate's measure
    recall: float  # Recall@20
    mrr: float
    coverage: float
    queries: int
    # Half-width of the 95% bootstrap interval of NDCG@10: how far apart two versions must be to differ.
    ndcg_interval: float = 0.0

    @classmethod
    def of(cls, lists: TopLists, queries: Queries, n_items: int) -> Scores:
        summary = summarize(lists, queries, n_items)
        spread = round(interval(per_query(lists, queries, n_items)["ndcg@10"]), 4)
        return cls(summary["ndcg@10"], summary["recall@20"], summary["mrr"], summary["coverage"], len(queries), spread)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score_graph(recs_onnx: bytes, item_ids: Sequence[str], weighting: RecentWeighting, protocol: Protocol) -> Scores:
    position = {item: i for i, item in enumerate(item_ids)}
    queries = encode(protocol, position, len(item_ids), weighting)
    if len(queries) == 0:
        return Scores(0.0, 0.0, 0.0, 0.0, 0)
    return Scores.of(run_onnx(recs_onnx, queries), queries, len(item_ids))


def servable(files: Mapping[str, bytes], manifest: Manifest) -> Models:
    """The version's models as serve loads them; raises ModelError for a version serve would refuse."""
    if manifest.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise ModelError(f"trained on feature schema {manifest.feature_schema_version!r}")
    try:
        catalog = Catalog.from_bytes(files[manifest.catalog_file])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"catalog missing or unreadable: {exc!r}") from exc
    return load_models(files, manifest, catalog)


def score_version(files: Mapping[str, bytes], manifest: Manifest, protocol: Protocol) -> Scores:
    """Raises ModelError for a version serve would not load."""
    models = servable(files, manifest)
    assert manifest.recs_model is not None  # servable refuses a version without one
    return score_graph(files[manifest.recs_model.file], models.recs.item_ids, models.recs.weighting, protocol)


def score_popularity(item_ids: Sequence[str], popularity: Sequence[float], protocol: Protocol) -> Scores:
    """The floor every model must clear: the window's best-sellers the person has not touched yet."""
    position = {item: i for i, item in enumerate(item_ids)}
    queries = encode(protocol, position, len(item_ids), RecentWeighting())
    if len(queries) == 0:
        return Scores(0.0, 0.0, 0.0, 0.0, 0)
    prior = np.asarray(popularity, dtype=np.float32)
    lists = rank(lambda inputs: np.broadcast_to(prior, (inputs.shape[0], prior.size)).copy(), queries)
    return Scores.of(lists, queries, len(item_ids))
