"""What a person was shown and did not take, and what they said they do not want: the profile's `seen` and
`dismissed` records, as the fold keeps them and the rules read them.

`seen` maps an item serve showed the person to (when they last touched it, or 0; then the times it was shown
since, oldest first). Impressions come from serve's exposure log only (the collector refuses them from
browsers). A touch (any event of the person on the item: a view is the click through, a dismissal an answer
too) drops the showings up to it, and a showing stamped at or before the latest touch is not counted (the
profile's recent history and dismissals say when that was for an item not yet in the record), so the record
does not depend on the order late events arrive in. A showing at a time the entry holds already is the same
showing (a re-sent impression): recording it again changes nothing, so impressions need no event-id check.
Both are bounded: SEEN_SHOWS times per item, SEEN_LIMIT items (the least recently active go first), so the
record stays small however many pages a person sees.

`dismissed` maps an item the person dismissed ("not interested") to when they last did, at most
DISMISSED_LIMIT items (the oldest go first); serve leaves each out of their fragments for a configured time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

# The most showings remembered per item: a rule may ask for at most this many (rules.document.MAX_SEEN_TIMES).
SEEN_SHOWS = 8
SEEN_LIMIT = 64
DISMISSED_LIMIT = 50

Seen = dict[str, tuple[int, ...]]


def _last_active(entry: tuple[int, ...]) -> int:
    # The newest time in the entry: showings after a touch are later than it, so the last element.
    return entry[-1]


def record_shown(seen: Seen, items: Iterable[str], ts_ms: int, last_touch: Callable[[], Mapping[str, int]]) -> None:
    """One impression: each item shown at `ts_ms`. `last_touch()` says when the person last touched each item
    the profile's history holds: called only for an item not yet in the record, to start it at its last touch."""
    touches: Mapping[str, int] | None = None
    for item in items:
        entry = seen.get(item)
        if entry is None:
            if touches is None:
                touches = last_touch()
            touched = touches.get(item, 0)
            if ts_ms > touched:
                seen[item] = (touched, ts_ms)
            continue
        if ts_ms <= entry[0] or ts_ms in entry[1:]:
            # Shown before the person last touched it (that showing was answered), or this very showing again
            # (an impression re-sent): nothing to add.
            continue
        # In time order (a late impression is sorted in), so the record does not depend on arrival order.
        shows = (*entry[1:], ts_ms)
        if len(shows) > 1 and shows[-2] > ts_ms:
            shows = tuple(sorted(shows))
        seen[item] = (entry[0], *shows[-SEEN_SHOWS:])
    if len(seen) > SEEN_LIMIT:
        # By last activity, then id: a total order, so replay and ingest drop the same items.
        for item in sorted(seen, key=lambda i: (_last_active(seen[i]), i))[: len(seen) - SEEN_LIMIT]:
            del seen[item]


def record_touch(seen: Seen, item: str, ts_ms: int) -> None:
    """The person acted on the item at `ts_ms`: what was shown until then no longer counts as ignored."""
    entry = seen.get(item)
    if entry is None or ts_ms <= entry[0]:
        return
    seen[item] = (ts_ms, *(shown for shown in entry[1:] if shown > ts_ms))


def shown_since(entry: tuple[int, ...], since_ms: int) -> int:
    """How many times the item was shown at or after `since_ms` without the person touching it since."""
    return sum(1 for shown in entry[1:] if shown >= since_ms)


def record_dismissal(dismissed: dict[str, int], item: str, ts_ms: int) -> None:
    if dismissed.get(item, -1) >= ts_ms:
        return
    dismissed[item] = ts_ms
    if len(dismissed) > DISMISSED_LIMIT:
        oldest = min(dismissed.items(), key=lambda kv: (kv[1], kv[0]))[0]
        del dismissed[oldest]


def dismissed_since(dismissed: Mapping[str, int], since_ms: int) -> frozenset[str]:
    """The items dismissed at or after `since_ms`."""
    return frozenset(item for item, ts in dismissed.items() if ts >= since_ms)


def ignored(seen: Mapping[str, tuple[int, ...]], times: int, since_ms: int) -> frozenset[str]:
    """The items shown at least `times` times since `since_ms` and never touched since."""
    return frozenset(
        item for item, entry in seen.items() if len(entry) > times and shown_since(entry, since_ms) >= times
    )
