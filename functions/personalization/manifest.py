"""A model version's manifest: what a version folder holds, as the trainer writes it and serve reads it.

One typed model for both sides. It is tolerant of keys it does not name (the trainer records evaluation,
comparison and drift figures that serve never reads), strict about everything serve acts on: the file names it
will fetch, their sha256, the model descriptions. A manifest that fails this model refuses its whole version.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bumped only for a change an older reader would misread; additions are extra keys and need no bump.
MANIFEST_SCHEMA_VERSION = 1
# The catalog file of versions that name none (written before catalog.bin): a JSON document.
CATALOG_FILE = "catalog.json"
# What trainers write now (personalization.catalog_file), named by the manifest's `catalog_file`.
CATALOG_BINARY_FILE = "catalog.bin"
MANIFEST_FILE = "manifest.json"

# A version is an S3 key segment and a response header value: a plain token, never a path or a line break.
VersionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
# A file inside the version's own folder: no slash, so a manifest can never point serve elsewhere in the bucket.
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class SegmentInfo(_Part):
    id: int
    name: Annotated[str, Field(max_length=200)]


class SegmentModelInfo(_Part):
    file: FileName
    items_file: FileName | None = None
    # How much nearer another segment's centre must be before a known visitor moves (personalization.hysteresis).
    hysteresis_margin: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class RecentWeightingInfo(_Part):
    decay: Annotated[float, Field(ge=0, le=1)]
    max_events: Annotated[int, Field(ge=1, le=10_000)]


class RecsModelInfo(_Part):
    file: FileName
    # The graph's index -> item id. None (versions since catalog.bin): the graph indexes the catalog's own
    # order, so the ids are not shipped twice.
    index_file: FileName | None = None
    recent_weighting: RecentWeightingInfo


class Manifest(_Part):
    # Absent from manifests written before it existed: those are schema 1.
    manifest_schema_version: Annotated[int, Field(ge=1)] = 1
    version: VersionName
    feature_schema_version: Annotated[str, Field(max_length=32)]
    files: dict[FileName, Sha256]
    # Which of `files` is the item catalog (catalog.bin or a catalog.json document); absent: catalog.json.
    catalog_file: FileName = CATALOG_FILE
    segments: list[SegmentInfo] = []
    segment_model: SegmentModelInfo | None = None
    recs_model: RecsModelInfo | None = None
    # When and from what it was trained (the version name carries both too); absent from hand-made versions.
    created: str | None = None
    data_hash: str | None = None
    # Everything else (metrics, parameters, data, distributions, evaluation, promotion, drift, ...) is the
    # trainer's record, kept as is: `recorded(key)`.

    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)

    @model_validator(mode="after")
    def _readable(self) -> Manifest:
        if self.manifest_schema_version > MANIFEST_SCHEMA_VERSION:
            raise ValueError(
                f"manifest schema {self.manifest_schema_version} is newer than this reader's {MANIFEST_SCHEMA_VERSION}"
            )
        if self.catalog_file not in self.files:
            raise ValueError(f"files: lists no {self.catalog_file}")
        named = [
            *([self.segment_model.file, self.segment_model.items_file] if self.segment_model else []),
            *([self.recs_model.file, self.recs_model.index_file] if self.recs_model else []),
        ]
        missing = sorted({name for name in named if name is not None and name not in self.files})
        if missing:
            raise ValueError(f"files: lacks {', '.join(missing)}, which the models name")
        return self

    def recorded(self, key: str) -> Any:
        """A key this model does not name (None when absent), as the trainer wrote it."""
        return (self.model_extra or {}).get(key)

    def with_recorded(self, **values: Any) -> Self:
        """This manifest with more of the trainer's record (a candidate's evaluation and promotion, say)."""
        return self.model_validate({**self.model_dump(mode="json", exclude_unset=True), **values})

    def to_json(self) -> str:
        """manifest.json as the trainer writes it: only what was given (no defaults spelled out), keys sorted."""
        return json.dumps(self.model_dump(mode="json", exclude_unset=True), indent=2, sort_keys=True)
