"""The profiles table: one item per pseudonymous user, written once per batch under optimistic locking."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from pynamodb.attributes import BinaryAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from personalization.profile import Profile
from store import codec


class ProfileItem(Model):
    """Stored shape. Short attribute names: every byte is paid for on every write."""

    class Meta:
        table_name = "profiles"  # replaced per deployment by `profile_table`

    pk = UnicodeAttribute(hash_key=True)
    d = BinaryAttribute(legacy_encoding=False)
    v = VersionAttribute()
    ttl = TTLAttribute(null=True)


@dataclass(frozen=True, slots=True)
class StoredProfile:
    profile: Profile
    version: int | None


@dataclass(frozen=True, slots=True)
class TableSettings:
    table_name: str
    region: str
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    max_retry_attempts: int = 3
    # Ingest raises this to the number of profiles it writes side by side; with fewer pooled connections than
    # threads, the extra threads open and drop a connection on every write.
    max_pool_connections: int = 10


@lru_cache(maxsize=8)
def profile_table(settings: TableSettings) -> type[ProfileItem]:
    """A model class bound to one table and one set of client timeouts (serve wants tight ones)."""
    meta = type(
        "Meta",
        (),
        {
            "table_name": settings.table_name,
            "region": settings.region,
            "connect_timeout_seconds": settings.connect_timeout_s,
            "read_timeout_seconds": settings.read_timeout_s,
            "max_retry_attempts": settings.max_retry_attempts,
            "max_pool_connections": settings.max_pool_connections,
        },
    )
    model: type[ProfileItem] = type(f"ProfileItem_{settings.table_name}", (ProfileItem,), {"Meta": meta})
    return model


class VersionConflict(Exception):
    """Another writer saved the profile since we read it."""


class ProfileStore:
    def __init__(self, settings: TableSettings) -> None:
        self._model = profile_table(settings)

    def get(self, user_id: str) -> StoredProfile | None:
        try:
            item = self._model.get(user_id)
        except self._model.DoesNotExist:
            return None
        return _stored(item)

    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]:
        """BatchGetItem in pages of 100 (pynamodb pages and retries unprocessed keys)."""
        return {item.pk: _stored(item) for item in self._model.batch_get(list(user_ids))}

    def save(self, profile: Profile, expected_version: int | None, expires_at: datetime) -> int:
        """Conditional put: succeeds only if the stored version is still `expected_version`."""
        item = self._model(pk=profile.user_id, d=codec.encode(profile), ttl=expires_at.astimezone(UTC))
        if expected_version is not None:
            item.v = expected_version  # pynamodb adds "v = expected" to the put's condition, then bumps it
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise VersionConflict(profile.user_id) from exc
            raise
        assert item.v is not None
        return int(item.v)


def _stored(item: ProfileItem) -> StoredProfile:
    return StoredProfile(codec.decode(item.pk, item.d), None if item.v is None else int(item.v))
