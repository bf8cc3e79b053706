"""`X-Personalization` says what answered a fragment: the model for this person, an experiment arm's baseline,
the page item's similar items, or the popular fallback with its reason. A reader (the storefront's badge, the
demo, a merchandiser) must never take an arm's popular list for the model's work, nor the model's similar items
for a "popular" fallback.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from model_export.training.interactions import ItemIndex
from personalization.catalog import Catalog, CatalogItem
from personalization.experiments import assign
from personalization.fragments import Mode, Reason
from personalization.identity import sign_token
from personalization.models import Models, RecsModel
from personalization.profile import Profile
from personalization.recommend import RecentWeighting
from personalization.rules import parse_document
from serve.pipeline import fallback
from serve.requests import FragmentRequest, PageContext
from serve.snapshot import Snapshot
from serve.sources import Sources
from serve.usecase import personalize
from store.profiles import StoredProfile
from tests.helpers.graphs import views_graph
from tests.helpers.serve_app import CONFIG, IDENTITY_KEY, App, Bucket, Served, start

EXPERIMENT = {
    "version": "labels",
    "experiments": [
        {
            "id": "recs-vs-popular",
            "slots": ["for-you"],
            "variants": [
                {"name": "control", "share": 0.5, "strategy": "model"},
                {"name": "popular", "share": 0.5, "strategy": "popular"},
            ],
        }
    ],
    "rules": [],
}


class Profiles:
    """Every visitor has a profile: a history of the least popular shoes (so the model's pick is not popular)."""

    def get(self, user_id: str) -> StoredProfile:
        profile = Profile(user_id, affinity={"shoes": 5.0}, affinity_at_ms=int(time.time() * 1000))
        profile.recent = [("i11", "v", profile.affinity_at_ms), ("i10", "v", profile.affinity_at_ms)]
        return StoredProfile(profile, version=1)


def person_in(arm: str) -> str:
    """A pseudonym the experiment assigns to `arm` (assignment is a pure hash, so the search is deterministic)."""
    experiment = parse_document(EXPERIMENT).experiments[0]
    people = (hashlib.sha256(str(n).encode()).hexdigest() for n in range(1000))
    return next(p for p in people if assign(experiment, p).name == arm)


def known(served: App, pseudonym: str, slot: str = "for-you") -> Any:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.put_rules(EXPERIMENT)
    state = start(bucket)
    served.state = Served(CONFIG, Profiles(), state.rollout)  # type: ignore[arg-type]  # the read, in memory
    token = sign_token(IDENTITY_KEY, pseudonym, int(time.time()) + 3600)
    return served.client.get(f"/v1/fragments/{slot}?format=json&k=4", headers={"x-pz-token": token})


def test_the_popular_arm_says_it_is_the_experiment_not_the_model(served: App) -> None:
    response = known(served, person_in("popular"))
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "experiment; strategy=popular"
    assert response.headers["x-experiment-variant"] == "recs-vs-popular:popular"
    assert response.json()["mode"] == "experiment"
    # The catalog's best-sellers, not the person's history: what the label promises
    assert [item["id"] for item in response.json()["items"]] == ["i0", "i1", "i2", "i3"]
    # Still one person's answer: never in a shared cache
    assert response.headers["cache-control"].startswith("private")


def test_the_model_arm_and_a_slot_outside_the_experiment_stay_personalized(served: App) -> None:
    control = known(served, person_in("control"))
    assert control.headers["x-personalization"] == "personalized"
    assert control.headers["x-experiment-variant"] == "recs-vs-popular:control"
    outside = known(served, person_in("popular"), slot="other")
    assert outside.headers["x-personalization"] == "personalized"
    assert outside.headers["x-experiment-variant"] == "none"


def test_a_fallback_keeps_its_reason_in_the_header(served: App) -> None:
    bucket = Bucket()
    bucket.publish("v1")
    served.state = start(bucket)
    response = served.client.get("/v1/fragments/because-you-viewed?format=json&k=3&item=i5")
    # No model in this version: the page item's similar items cannot be had, so it is the popular fallback
    assert response.headers["x-personalization"] == "fallback; reason=anonymous"
    assert response.json()["mode"] == "fallback"


# -- the model's similar items ------------------------------------------------------------------------------

SHOES = [CatalogItem(f"i{n}", "shoes", 10.0 + n, 100.0 - n) for n in range(12)]


@pytest.fixture(scope="module")
def similar_world() -> Sources:
    """A real recs graph over twelve items where i10 and i11 are always viewed together, i0..i9 apart."""
    catalog = Catalog(SHOES)
    index = ItemIndex.from_catalog(catalog)
    rows = [(f"u{n}", item) for n in range(6) for item in ("i10", "i11")]
    rows += [(f"w{n}", f"i{n}") for n in range(10)]
    recs = RecsModel(views_graph(rows, index), index.ids, catalog, RecentWeighting())
    models = Models(segments=None, recs=recs)  # type: ignore[arg-type]  # anonymous requests predict no segment
    snapshot = Snapshot("v1", catalog, models=models)
    return Sources(Profiles(), snapshot, catalog, None, CONFIG.fold_settings)


def test_an_anonymous_because_you_viewed_is_the_models_similar_items(similar_world: Sources) -> None:
    now_ms = int(time.time() * 1000)
    request = FragmentRequest("because-you-viewed", 3, now_ms, context=PageContext(item="i10"))
    fragment = personalize(request, similar_world)
    assert fragment.mode is Mode.SIMILAR
    assert fragment.label() == "similar; source=item; reason=anonymous"
    # What the label promises: i10's neighbour first, not the catalog's best-seller
    assert fragment.items[0].id == "i11"


@pytest.mark.parametrize(
    ("slot", "item"),
    [("because-you-viewed", "not-in-the-catalog"), ("for-you", "i10"), ("because-you-viewed", None)],
)
def test_without_similar_items_it_is_the_popular_fallback(similar_world: Sources, slot: str, item: str | None) -> None:
    """An item the model does not know, a slot that is not because*, no page item: popular, flagged."""
    now_ms = int(time.time() * 1000)
    fragment = fallback(
        FragmentRequest(slot, 3, now_ms, context=PageContext(item=item)), similar_world, Reason.ANONYMOUS
    )
    assert fragment.mode is Mode.FALLBACK
    assert fragment.label() == "fallback; reason=anonymous"
    assert [item.id for item in fragment.items] == ["i0", "i1", "i2"]
