"""bench/load.py without servers: the visitors' behaviour, their ledgers, the loss accounting and the drain."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from bench.load import (
    CONSENT,
    EVENT_MIX,
    MAX_POSTS,
    PERSONALIZED,
    WARMUP_VISITOR,
    Call,
    Folded,
    Item,
    Load,
    LoadPlan,
    StreamTail,
    Visitor,
    check,
    cookie_header,
    drain,
    next_events,
    parse_set_cookies,
    proc_cpu_s,
    record_answer,
)
from personalization.profile import EVENT_ID_LIMIT, Profile, event_id_digest

ITEMS = (Item("1", "electronics.smartphone", 489.07), Item("2", None, None), Item("3", "apparel.shoes", 40.0))


def plan(**overrides: Any) -> LoadPlan:
    fields: dict[str, Any] = {
        "collect_url": "http://collect.test",
        "serve_url": "http://serve.test",
        "items": ITEMS,
        "categories": ((0,), (2,)),
        "seconds": 0.3,
        "collect_clients": 2,
        "serve_clients": 2,
        "events_per_post": 4,
    }
    return LoadPlan(**{**fields, **overrides})


SIGNED = "v1.signed"  # check() is handed the token -> pseudonym mapping: the token itself is opaque here


def visitor_with(accepted: list[tuple[str, str]], cookie: str | None = SIGNED) -> Visitor:
    visitor = Visitor(0, "session", (0,), accepted=accepted)
    if cookie is not None:
        visitor.cookies["pz_id"] = cookie
    return visitor


def profile_of(counts: Mapping[str, int], ids: list[str]) -> Profile:
    return Profile(user_id="p" * 64, counts=dict(counts), event_ids=[event_id_digest(i) for i in ids])


# -- cookies and events ----------------------------------------------------------------------------------


def test_set_cookie_headers_become_a_jar_and_the_jar_a_cookie_header() -> None:
    jar = parse_set_cookies(["pz_id=v1.abc.123.sig; Path=/; Max-Age=10; Secure; HttpOnly", "pz_seg=s1.2.x; Path=/"])
    assert jar == {"pz_id": "v1.abc.123.sig", "pz_seg": "s1.2.x"}
    assert cookie_header(jar) == {"cookie": "pz_id=v1.abc.123.sig; pz_seg=s1.2.x"}
    assert cookie_header({}) == {}
    assert parse_set_cookies(["garbage", "=nameless"]) == {}


def test_a_visitors_events_are_valid_catalog_events_with_fresh_ids() -> None:
    # Given a visitor and a plan of up to 4 events per post
    rng = random.Random(1)
    visitor = Visitor(0, "session-1", (0,))
    # When it sends many posts
    posts = [next_events(visitor, rng, plan()) for _ in range(200)]
    events = [event for post in posts for event in post]
    # Then each post holds 1..4 events, every id is new, and each names a catalog item with full consent
    assert {len(post) for post in posts} == {1, 2, 3, 4}
    assert len({event["event_id"] for event in events}) == len(events)
    assert {event["type"] for event in events} == {kind for kind, _ in EVENT_MIX}
    by_id = {item.id: item for item in ITEMS}
    for event in events:
        item = by_id[event["item_id"]]
        assert (event.get("category"), event.get("price")) == (item.category, item.price)
        assert (event["consent"], event["session_id"]) == (CONSENT, "session-1")
        assert not {"user_id", "ts"} & set(event)  # the collector sets both
    # And the favourite category dominates
    assert sum(event["item_id"] == "1" for event in events) > len(events) / 2
    # And no visitor can outgrow the profile's recent event ids, so the id check stays exact
    assert MAX_POSTS * 5 <= EVENT_ID_LIMIT


def test_the_collectors_answers_are_filed_per_event() -> None:
    visitor = Visitor(0, "s", ())
    sent = [{"event_id": f"e{i}", "type": "view_product"} for i in range(4)]
    body = {
        "results": [
            {"index": 0, "status": "accepted", "event_id": "e0"},
            {"index": 1, "status": "rejected", "field": "price", "reason": "invalid_field", "message": "no"},
            {"index": 2, "status": "failed", "reason": "throttled", "event_id": "e2"},
            {"index": 3, "status": "accepted", "event_id": "other"},
        ]
    }
    record_answer(visitor, sent, 202, body)
    assert visitor.accepted == [("e0", "view_product"), ("e3", "view_product")]
    assert visitor.failed == ["e2"]
    assert visitor.rejected == 1
    assert visitor.id_mismatches == 1
    # A request refused as a whole has no results: every event is rejected
    record_answer(visitor, sent, 413, {"error": "payload_too_large", "message": "..."})
    assert visitor.rejected == 5
    # A 5xx without results (a crash, not the collector's 503): every event's outcome is unknown
    record_answer(visitor, sent[:2], 500, None)
    assert visitor.failed == ["e2", "e0", "e1"]


# -- the loss accounting ---------------------------------------------------------------------------------


def test_every_accepted_event_in_the_profile_is_no_loss() -> None:
    visitor = visitor_with([("a", "view_product"), ("b", "view_product"), ("c", "purchase")])
    profile = profile_of({"view_product": 2, "purchase": 1}, ["a", "b", "c"])
    result = check([visitor], lambda token: "p" * 64, {"p" * 64: profile}, {}, EVENT_ID_LIMIT)
    assert (result.lost, result.duplicated, result.missing_by_id, result.visitors_mismatched) == (0, 0, 0, 0)
    assert result.accepted == result.applied == result.checked_by_id == 3


def test_a_shortfall_is_lost_and_the_stream_says_where() -> None:
    # Given three accepted events, one of which never reached the stream and one that did but was not folded
    visitor = visitor_with([("a", "view_product"), ("b", "view_product"), ("c", "add_to_cart")])
    profile = profile_of({"view_product": 1}, ["a"])
    in_stream = {"a": ("view_product", "p"), "c": ("add_to_cart", "p")}
    # When checked
    result = check([visitor], lambda token: "p" * 64, {"p" * 64: profile}, in_stream, EVENT_ID_LIMIT)
    # Then two are lost, one before the stream and one after
    assert (result.lost, result.duplicated, result.missing_by_id) == (2, 0, 2)
    assert (result.accepted_not_in_stream, result.in_stream_not_folded) == (1, 1)
    assert result.visitors_mismatched == 1
    assert result.examples


def test_an_excess_is_duplicated_unless_a_failed_event_was_written_after_all() -> None:
    visitor = visitor_with([("a", "view_product")])
    visitor.failed = ["b"]
    profile = profile_of({"view_product": 2}, ["a", "b"])
    # A failed event the stream holds was written anyway (docs/collector.md): its count is expected
    written = check([visitor], lambda t: "p" * 64, {"p" * 64: profile}, {"b": ("view_product", "p")}, 64)
    assert (written.lost, written.duplicated, written.failed_but_written) == (0, 0, 1)
    # One the stream does not hold cannot explain the second count: it is a duplicate
    duplicated = check([visitor], lambda t: "p" * 64, {"p" * 64: profile}, {}, 64)
    assert (duplicated.lost, duplicated.duplicated) == (0, 1)


def test_a_visitor_without_a_valid_identity_or_profile_loses_everything_accepted() -> None:
    forged = visitor_with([("a", "view_product")], cookie="forged")
    unknown = visitor_with([("b", "view_product"), ("c", "view_product")], cookie="good")
    idle = visitor_with([], cookie=None)  # never got an answer: nothing to check
    pseudonyms = {"good": "q" * 64}
    result = check([forged, unknown, idle], pseudonyms.get, {}, {}, EVENT_ID_LIMIT)
    assert result.visitors == 2
    assert (result.visitors_without_identity, result.visitors_without_profile) == (1, 1)
    assert result.lost == 3


# -- the drain and the stream ----------------------------------------------------------------------------


class FakeKinesis:
    """describe_stream, get_shard_iterator and get_records over two shards held in memory."""

    def __init__(self, shards: dict[str, list[dict[str, Any]]]) -> None:
        self.shards = shards

    def describe_stream(self, StreamName: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": shard} for shard in self.shards]}}

    def get_shard_iterator(self, StreamName: str, ShardId: str, ShardIteratorType: str) -> dict[str, Any]:
        return {"ShardIterator": f"{ShardId}|0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, at = ShardIterator.split("|")
        records = self.shards[shard][int(at) : int(at) + Limit]
        return {"Records": records, "NextShardIterator": f"{shard}|{int(at) + len(records)}"}


def record(seq: int, event_id: str, kind: str = "view_product") -> dict[str, Any]:
    data = json.dumps({"event_id": event_id, "type": kind}).encode()
    return {"SequenceNumber": str(seq), "Data": data, "PartitionKey": "p" * 64}


def test_the_tail_reads_every_shard_then_only_what_is_new() -> None:
    kinesis = FakeKinesis({"s0": [record(1, "a"), record(2, "b")], "s1": [record(1, "c", "impression")]})
    tail = StreamTail(kinesis, "stream")
    assert tail.read_new() == 3
    assert tail.events == {
        "a": ("view_product", "p" * 64),
        "b": ("view_product", "p" * 64),
        "c": ("impression", "p" * 64),
    }
    kinesis.shards["s0"].append(record(4, "d"))
    kinesis.shards["s1"].append({"SequenceNumber": "2", "Data": b"not json", "PartitionKey": "x"})
    assert tail.read_new() == 2
    assert (tail.records, tail.unreadable) == (5, 1)
    assert tail.sequence_gaps == 1  # s0 holds 1, 2, 4


def test_the_drain_waits_for_the_poller_and_gives_up_at_its_bound() -> None:
    tail = StreamTail(FakeKinesis({"s0": [record(1, "a"), record(2, "b")]}), "stream")
    folded = Folded()
    folded.add(2)
    done = drain(tail, folded, timeout_s=5, settle_s=0)
    assert (done.drained, done.backlog_at_stop) == (True, 0)

    behind = StreamTail(FakeKinesis({"s0": [record(1, "a"), record(2, "b")]}), "stream")
    stuck = drain(behind, Folded(), timeout_s=0.3, settle_s=0)
    assert (stuck.drained, stuck.backlog_at_stop) == (False, 2)


def test_cpu_time_is_read_from_proc() -> None:
    mine = proc_cpu_s(os.getpid())
    assert mine is None or mine > 0
    assert proc_cpu_s(None) is None
    assert proc_cpu_s(2**31 - 1) is None


# -- the load loop against in-memory apps ----------------------------------------------------------------


class FakeApps:
    """The collector (mints a token for a visitor without one, accepts everything) and serve (personal
    fragments for a token it minted), recording what each visitor sent."""

    def __init__(self) -> None:
        self.events_by_token: dict[str, list[str]] = {}
        self.anonymous_posts = 0
        self.fragments: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        cookies = parse_set_cookies(request.headers.get("cookie", "").split("; "))
        token = cookies.get("pz_id")
        if request.url.path == "/v1/events":
            events = json.loads(request.content)["events"]
            headers = {}
            if token is None:
                self.anonymous_posts += 1
                token = f"v1.{uuid.uuid4().hex * 2}.9999999999.sig"
                headers["set-cookie"] = f"pz_id={token}; Path=/; Secure; HttpOnly"
            self.events_by_token.setdefault(token, []).extend(e["event_id"] for e in events)
            results = [{"index": i, "status": "accepted", "event_id": e["event_id"]} for i, e in enumerate(events)]
            return httpx.Response(202, json={"results": results}, headers=headers)
        self.fragments.append(token)
        mode = PERSONALIZED if token in self.events_by_token else "fallback; reason=anonymous"
        return httpx.Response(200, json={"items": []}, headers={"x-personalization": mode})


def test_visitors_keep_their_cookie_and_every_answer_is_recorded() -> None:
    # Given in-memory apps
    apps = FakeApps()
    # When the load runs briefly, warm-up first
    result = asyncio.run(Load(plan(), httpx.MockTransport(apps)).run())
    # Then the warm-up visitor came first and saw a personal fragment before the clock started
    assert result.visitors[0].number == WARMUP_VISITOR
    assert any(call.note == PERSONALIZED for call in result.warmup)
    # And each visitor posted without a cookie once, then always with the one it was given
    visitors = [v for v in result.visitors if v.accepted]
    assert apps.anonymous_posts == len(visitors)
    assert {v.token: [e for e, _ in v.accepted] for v in visitors} == apps.events_by_token
    # And serve was asked both as known visitors and as nobody
    assert None in apps.fragments
    assert any(token in apps.events_by_token for token in apps.fragments)
    assert {call.kind for call in result.calls} == {"collect", "serve"}
    assert all(isinstance(call, Call) and call.status in (200, 202) for call in result.calls)
    assert result.duration_s == pytest.approx(0.3, abs=0.5)


def test_either_experiment_arm_is_a_personal_answer() -> None:
    """The example experiment's popular arm says it is not the model; it is still served for the person (and
    logged as an impression), so the warm-up stops at it and the impressions expected count it."""
    from bench.load import personal

    assert personal(PERSONALIZED)
    assert personal("experiment; strategy=popular")
    assert not personal("fallback; reason=anonymous")
    assert not personal("similar; source=item; reason=anonymous")
    assert not personal("segment")
