"""The profiles table: one item per pseudonymous user, written once per batch under optimistic locking.

An erased person's item becomes a tombstone under the same key: no profile data, an `erased` mark, a version
bumped past whatever any writer read, and its own TTL. So ingest's one BatchGetItem per batch sees the
erasure at no extra cost, a write racing the erasure fails its version condition and re-reads the
tombstone, and readers that only want profiles (serve) see none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.attributes import BinaryAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import PutError
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from personalization.profile import Profile
from store import aws, codec
from store.tables import bind

# The value of `erased` on every tombstone: the sparse index below holds tombstones only, under this one key.
# Erasures are rare, so one partition of the index is never hot.
TOMBSTONE = "1"


# pynamodb's Index.__init_subclass__ is untyped.
class ErasedIndex(GlobalSecondaryIndex["ProfileItem"]):  # type: ignore[no-untyped-call]
    """Sparse: only tombstones carry `erased`, so profiles cost the index nothing. The trainer lists them here."""

    class Meta:
        index_name = "erased"
        projection = KeysOnlyProjection()

    erased = UnicodeAttribute(hash_key=True)


class ProfileItem(Model):
    """Stored shape. Short attribute names: every byte is paid for on every write."""

    class Meta:
        table_name = "profiles"  # replaced per deployment by `profile_table`

    pk = UnicodeAttribute(hash_key=True)
    # The encoded profile; absent on a tombstone.
    d = BinaryAttribute(legacy_encoding=False, null=True)
    v = VersionAttribute()
    ttl = TTLAttribute(null=True)
    erased = UnicodeAttribute(null=True)
    erased_index = ErasedIndex()


@dataclass(frozen=True, slots=True)
class StoredProfile:
    profile: Profile
    version: int | None
    # When DynamoDB's TTL will delete the item (refreshed on every write).
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Erased:
    """A tombstone: the person was erased; their events must be dropped until it expires."""

    version: int | None
    expires_at: datetime | None


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


def profile_table(settings: TableSettings) -> type[ProfileItem]:
    """A model class bound to one table and one set of client timeouts (serve wants tight ones)."""
    return bind(
        ProfileItem,
        settings.table_name,
        settings.region,
        connect_timeout_seconds=settings.connect_timeout_s,
        read_timeout_seconds=settings.read_timeout_s,
        max_retry_attempts=settings.max_retry_attempts,
        max_pool_connections=settings.max_pool_connections,
    )


class VersionConflict(Exception):
    """Another writer saved the profile since we read it."""


class ProfileStore:
    def __init__(self, settings: TableSettings) -> None:
        self._model = profile_table(settings)

    def connect(self) -> None:
        """Make the table's client now, without a request, from the process's one botocore session: creating
        it reads botocore's data files, which a function would rather do at init than on its first request, and
        once rather than again in a session of pynamodb's own."""
        connection = self._model._get_connection().connection
        # pynamodb offers no public way to pass a session: it makes one per thread, on first use, under this name.
        connection._local.session = aws.session()
        with aws.creating():
            _ = connection.client

    def get(self, user_id: str) -> StoredProfile | None:
        """The person's profile; None when there is none or they were erased."""
        found = self.read(user_id)
        return found if isinstance(found, StoredProfile) else None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]:
        """The profiles among `user_ids` (erased people and unknown ids left out)."""
        return {pk: found for pk, found in self.read_many(user_ids).items() if isinstance(found, StoredProfile)}

    def read(self, user_id: str, consistent: bool = False) -> StoredProfile | Erased | None:
        """What is stored under the id: a profile, a tombstone, or nothing.

        `consistent` after a conflicting write, or where a person must see their own erasure at once.
        """
        try:
            item = self._model.get(user_id, consistent_read=consistent)
        except self._model.DoesNotExist:
            return None
        return _stored(item)

    def read_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile | Erased]:
        """BatchGetItem in pages of 100 (pynamodb pages and retries unprocessed keys); tombstones included."""
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

    def erase(self, user_id: str, tombstone_until: datetime) -> bool:
        """Replace whatever is stored under the id by a tombstone; True if a profile was there.

        One unconditional UpdateItem: it always wins, and it adds 1 to the version whatever it was (ADD starts
        an absent version at 0), so any write prepared from an earlier read fails its version condition.
        """
        model = self._model
        # Through the table connection, not Model.update: that one adds its own version condition, or on an
        # unread item sets the version to 1, which a writer that read version 1 would then overwrite.
        response = model._get_connection().update_item(
            user_id,
            actions=[
                model.d.remove(),
                model.erased.set(TOMBSTONE),
                model.ttl.set(tombstone_until.astimezone(UTC)),
                model.v.add(1),
            ],
            return_values=ALL_OLD,
        )
        return "d" in response.get("Attributes", {})

    def erased_ids(self) -> Iterator[str]:
        """The pseudonymous ids of every live tombstone (from the sparse index: eventually consistent)."""
        for item in self._model.erased_index.query(TOMBSTONE):
            yield item.pk


def _stored(item: ProfileItem) -> StoredProfile | Erased:
    version = None if item.v is None else int(item.v)
    if item.erased is not None or item.d is None:
        return Erased(version, item.ttl)
    return StoredProfile(codec.decode(item.pk, item.d), version, item.ttl)
