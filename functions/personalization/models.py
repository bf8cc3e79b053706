"""The exported models as serve runs them: onnxruntime sessions tuned for one small request at a time.

A model version is refused as a whole (ModelError) when a graph does not load, its inputs or outputs are not
the ones the manifest promises, or its item index disagrees with the catalog; serve then falls back, flagged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from personalization.catalog import Catalog
from personalization.features import SEGMENT_DISTANCES, SEGMENT_INPUT
from personalization.hysteresis import sticky_segment
from personalization.manifest import Manifest, SegmentInfo
from personalization.profile import Profile
from personalization.ranking import Candidates, Scored
from personalization.recommend import (
    EXCLUDED_BELOW,
    INPUT_EXCLUDE,
    INPUT_ITEMS,
    INPUT_K,
    INPUT_WEIGHTS,
    OUTPUT_INDICES,
    OUTPUT_SCORES,
    RecentWeighting,
    exclusion_indices,
    onnx_feed,
    recent_inputs,
)


class CatalogPositions(Protocol):
    """Exclusions that know their catalog positions (personalization.rules.Exclusions.catalog_positions)."""

    def __call__(self, catalog: Catalog) -> npt.NDArray[np.intp] | None: ...


class ModelError(Exception):
    """A model version that cannot be served."""


class _ItemIndex(BaseModel):
    """The recs graph's index file: position -> item id."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    items: list[str]


# The segment items file: a segment label -> its best-selling item ids.
_SEGMENT_ITEMS = TypeAdapter(dict[int, list[str]], config=ConfigDict(coerce_numbers_to_str=True))


def session(model: bytes) -> ort.InferenceSession:
    """One request is a handful of small tensors: a single thread with no pool hand-offs is the fastest path,
    and full graph optimization is paid once, at load (before the SnapStart snapshot)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
        raise ModelError(f"graph does not load: {exc}") from exc


def _require_io(sess: ort.InferenceSession, inputs: Collection[str], outputs: Collection[str], what: str) -> None:
    have_in = {i.name for i in sess.get_inputs()}
    have_out = {o.name for o in sess.get_outputs()}
    if not set(inputs) <= have_in or not set(outputs) <= have_out:
        raise ModelError(f"{what}: expected inputs {sorted(inputs)} and outputs {sorted(outputs)}")


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    name: str


class SegmentModel:
    def __init__(
        self,
        graph: bytes | ort.InferenceSession,
        segments: list[SegmentInfo],
        items: Mapping[int, list[str]],
        catalog: Catalog,
        hysteresis_margin: float = 0.0,
    ) -> None:
        self._session = graph if isinstance(graph, ort.InferenceSession) else session(graph)
        _require_io(self._session, [SEGMENT_INPUT], [SEGMENT_DISTANCES], "segment.onnx")
        self.segments = {s.id: Segment(s.id, s.name) for s in segments}
        self.hysteresis_margin = hysteresis_margin
        # Feature vectors compare prices with this catalog's; computed now, at load, not on a first request.
        _ = catalog.relative_prices
        # What a segment fragment shows: the segment's own best-sellers, as catalog items.
        self.items = {label: [catalog.by_id[i] for i in ids if i in catalog.by_id] for label, ids in items.items()}

    def popular(self, segment: int, k: int) -> list[Scored]:
        chosen = self.items.get(segment, [])[:k]
        return [Scored(item, 1.0 - rank / max(len(chosen), 1)) for rank, item in enumerate(chosen)]

    def predict(self, vector: list[float], current: int | None = None) -> Segment:
        """The nearest segment; for a visitor whose current segment is known, that one until another is
        nearer by more than the version's hysteresis margin (personalization.hysteresis)."""
        features = np.asarray([vector], dtype=np.float64)
        (distances,) = self._session.run([SEGMENT_DISTANCES], {SEGMENT_INPUT: features})
        label = sticky_segment(distances[0].tolist(), current, self.hysteresis_margin)
        return self.segments.get(label, Segment(label, f"segment {label}"))


class RecsModel:
    def __init__(
        self, graph: bytes | ort.InferenceSession, item_ids: list[str], catalog: Catalog, weighting: RecentWeighting
    ) -> None:
        self._session = graph if isinstance(graph, ort.InferenceSession) else session(graph)
        _require_io(
            self._session,
            [INPUT_ITEMS, INPUT_WEIGHTS, INPUT_EXCLUDE, INPUT_K],
            [OUTPUT_INDICES, OUTPUT_SCORES],
            "recs.onnx",
        )
        if item_ids is catalog.ids or item_ids == catalog.ids:
            # The trainer writes the index in catalog order: the catalog's own positions serve as is.
            self.index: Mapping[str, int] = catalog.position
            self._positions: npt.NDArray[np.intp] | None = None
            self._indices: npt.NDArray[np.int64] | None = None
        else:
            missing = [item for item in item_ids if item not in catalog.position]
            if missing:
                raise ModelError(f"recs index names {len(missing)} items the catalog lacks, e.g. {missing[0]}")
            self.index = {item: position for position, item in enumerate(item_ids)}
            # The graph's index -> the catalog position, to hand its top k over as catalog positions; and back
            # (-1: an item the graph does not know), for the exclusions.
            self._positions = np.fromiter((catalog.position[item] for item in item_ids), np.intp, len(item_ids))
            self._indices = np.full(len(catalog), -1, dtype=np.int64)
            self._indices[self._positions] = np.arange(len(item_ids))
        self.item_ids = item_ids
        self._catalog = catalog
        self.weighting = weighting

    def __len__(self) -> int:
        return len(self.item_ids)

    def _candidates(self, indices: Any, scores: Any) -> Candidates:
        """The graph's top k as catalog positions and scores (no object per item), without the excluded items
        that only filled the list. TopK names an index once, as Candidates wants."""
        kept = scores > EXCLUDED_BELOW
        top = indices[kept].astype(np.intp, copy=False)
        positions = top if self._positions is None else self._positions[top]
        return Candidates(self._catalog, positions, scores[kept].astype(np.float64))

    def _exclusion_indices(self, exclude: Collection[str]) -> npt.NDArray[np.int64]:
        """The graph's indices of the excluded items, ascending and distinct: straight from the catalog positions
        when the exclusions know theirs (the rules' Exclusions), else one look-up per id."""
        positioned: CatalogPositions | None = getattr(exclude, "catalog_positions", None)
        positions = None if positioned is None else positioned(self._catalog)
        if positions is None:
            return exclusion_indices(exclude, self.index)
        if self._indices is None:
            return positions.astype(np.int64)
        found = self._indices[positions]
        return np.sort(found[found >= 0])

    def recommend(self, profile: Profile, k: int, exclude: Collection[str]) -> Candidates:
        """Top k for the profile's recent items; excluded items are masked inside the graph, so the list is
        filled with eligible items rather than trimmed afterwards. Empty when the history names no known item."""
        item_idx, item_w = recent_inputs(profile.recent, self.index, self.weighting)
        if item_idx.size == 0:
            return Candidates.empty(self._catalog)
        feed = onnx_feed(item_idx, item_w, self._exclusion_indices(exclude), min(k, len(self)))
        indices, scores = self._session.run([OUTPUT_INDICES, OUTPUT_SCORES], feed)
        return self._candidates(indices, scores)

    def similar(self, item_id: str, k: int, exclude: Collection[str]) -> Candidates:
        """Items like `item_id` ("because you viewed"): the same graph, fed a one-item history. Empty when
        the model does not know the item."""
        position = self.index.get(item_id)
        if position is None:
            return Candidates.empty(self._catalog)
        exclude_idx = np.union1d(self._exclusion_indices(exclude), [position])
        item_idx = np.asarray([position], dtype=np.int64)
        feed = onnx_feed(item_idx, np.ones(1, dtype=np.float32), exclude_idx, min(k, len(self)))
        indices, scores = self._session.run([OUTPUT_INDICES, OUTPUT_SCORES], feed)
        return self._candidates(indices, scores)


@dataclass(frozen=True, slots=True)
class Models:
    segments: SegmentModel
    recs: RecsModel


@dataclass(frozen=True, slots=True)
class Sessions:
    """A version's two graphs, loaded: what needs no catalog, so it can be made while the catalog is read."""

    segment: ort.InferenceSession
    recs: ort.InferenceSession


def load_sessions(files: Mapping[str, bytes], manifest: Manifest) -> Sessions:
    """The graphs' sessions (ModelError when the manifest names none or a graph does not load). onnxruntime
    builds a session natively, mostly without the GIL: serve runs this on a thread beside the catalog's read."""
    recs_meta, segment_meta = manifest.recs_model, manifest.segment_model
    if recs_meta is None or segment_meta is None:
        raise ModelError("the manifest describes no recs_model or no segment_model")
    try:
        segment, recs = files[segment_meta.file], files[recs_meta.file]
    except KeyError as exc:
        raise ModelError(f"model files incomplete: {exc}") from None
    return Sessions(session(segment), session(recs))


def load_models(
    files: Mapping[str, bytes], manifest: Manifest, catalog: Catalog, sessions: Sessions | None = None
) -> Models:
    """The version's graphs, ready to serve against `catalog`; ModelError for anything else. `sessions`: the
    graphs already loaded (load_sessions), else they are loaded here."""
    recs_meta, segment_meta = manifest.recs_model, manifest.segment_model
    if recs_meta is None or segment_meta is None:
        raise ModelError("the manifest describes no recs_model or no segment_model")
    try:
        index_file = recs_meta.index_file
        # No index file: the graph indexes the catalog's own order (the trainer writes it so since catalog.bin).
        item_ids = catalog.ids if index_file is None else _ItemIndex.model_validate_json(files[index_file]).items
        items_file = segment_meta.items_file
        items = _SEGMENT_ITEMS.validate_json(files[items_file]) if items_file else {}
    except (KeyError, ValidationError) as exc:
        raise ModelError(f"model files incomplete or of the wrong shape: {exc}") from None
    recent = recs_meta.recent_weighting
    weighting = RecentWeighting(decay=recent.decay, max_events=recent.max_events)
    graphs = sessions or load_sessions(files, manifest)
    segments = SegmentModel(graphs.segment, manifest.segments, items, catalog, segment_meta.hysteresis_margin)
    recs = RecsModel(graphs.recs, item_ids, catalog, weighting)
    return Models(segments, recs)
