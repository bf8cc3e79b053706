"""The local edge (infra/local/edge.py) and the shop's catalog cut, with the origins replaced in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from infra.local.edge import EdgeSettings, create_app, viewer_request
from infra.local.shop_catalog import shop_catalog
from personalization.catalog import Catalog, CatalogItem

SERVE = "http://serve.test"
COLLECT = "http://collect.test"
VIEWER_JS = Path(__file__).resolve().parents[2] / "infra" / "cloudfront" / "viewer_request.js"


class Origins:
    """Both origins in one handler: records what reached them and answers as told."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.answer = httpx.Response(200, json={"ok": True})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answer


@pytest.fixture
def origins() -> Origins:
    return Origins()


@pytest.fixture
def edge(origins: Origins, tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "index.html").write_text("<!doctype html><title>shop</title>")
    settings = EdgeSettings(serve_url=SERVE, collect_url=COLLECT, storefront_dir=tmp_path)
    app = create_app(settings, catalog=lambda: {"items": []}, transport=httpx.MockTransport(origins))
    with TestClient(app, base_url="http://edge.test") as client:
        yield client


def test_the_viewer_rule_marks_only_the_presence_of_the_identity_cookie() -> None:
    assert viewer_request({}, {"pz_id": "anything"})["x-pz-known"] == "1"
    assert viewer_request({}, {"pz_seg": "s1.1.x"})["x-pz-known"] == "0"
    # A viewer cannot claim to be known (nor a context, nor a host): its own headers are replaced, whatever
    # their case.
    claimed = {"X-PZ-Known": "1", "X-Pz-Ctx": "device=mobile", "X-PZ-Host": "evil.test"}
    assert viewer_request(claimed, {}) == {"x-pz-known": "0", "x-pz-host": "", "x-pz-ctx": ""}
    # The same rule as the CloudFront function the template deploys.
    assert 'request.cookies["pz_id"] ? "1" : "0"' in VIEWER_JS.read_text()


def test_fragments_go_to_serve_with_path_query_cookies_and_the_known_mark(edge: TestClient, origins: Origins) -> None:
    edge.cookies.set("pz_id", "v1.token")
    response = edge.get(
        "/v1/fragments/for-you?format=json&k=8&item=42", headers={"x-pz-known": "0", "if-none-match": '"e"'}
    )
    assert response.status_code == 200
    (request,) = origins.seen
    assert str(request.url) == f"{SERVE}/v1/fragments/for-you?format=json&k=8&item=42"
    assert request.headers["x-pz-known"] == "1"
    assert request.headers["cookie"] == "pz_id=v1.token"
    assert request.headers["if-none-match"] == '"e"'
    assert request.headers["x-forwarded-proto"] == "http"
    assert request.headers["accept-encoding"] == "identity"


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
IPAD = "Mozilla/5.0 (iPad; CPU OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
PIXEL = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36"
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 15; SM-X710) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


@pytest.mark.parametrize(
    ("agent", "flags"),
    [
        (IPHONE, ("true", "false", "false")),
        (PIXEL, ("true", "false", "false")),
        (IPAD, ("true", "true", "false")),
        (ANDROID_TABLET, ("true", "true", "false")),
        (DESKTOP, ("false", "false", "true")),
    ],
)
def test_the_edge_adds_cloudfronts_viewer_headers_and_replaces_a_clients_own(
    edge: TestClient, origins: Origins, agent: str, flags: tuple[str, str, str]
) -> None:
    edge.get(
        "/v1/fragments/for-you",
        headers={
            "user-agent": agent,
            "accept-language": "es-ES,es;q=0.9,en;q=0.5",
            "cloudfront-viewer-country": "US",  # a client's claim: replaced
            "cloudfront-is-desktop-viewer": "true",
        },
    )
    (request,) = origins.seen
    seen = (request.headers["cloudfront-is-mobile-viewer"], request.headers["cloudfront-is-tablet-viewer"])
    assert seen == flags[:2]
    assert "cloudfront-is-desktop-viewer" not in request.headers  # a client's claim is dropped
    assert request.headers["cloudfront-viewer-country"] == "ES"
    assert request.headers["cloudfront-viewer-time-zone"] == "UTC"
    assert request.headers["x-pz-host"] == "edge.test"
    # No rules document read: nothing to key on
    assert request.headers["x-pz-ctx"] == ""


def test_a_configured_country_and_zone_and_the_live_rules_dimensions_key_the_request(
    origins: Origins, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("")
    settings = EdgeSettings(SERVE, COLLECT, tmp_path, country="DE", time_zone="Europe/Berlin")
    dimensions = frozenset({"device", "timezone", "channel"})
    app = create_app(settings, transport=httpx.MockTransport(origins), dimensions=lambda: dimensions)
    with TestClient(app, base_url="http://edge.test") as client:
        client.get("/v1/fragments/for-you", headers={"user-agent": IPHONE, "referer": "https://www.google.com/"})
        client.get("/v1/fragments/for-you", headers={"user-agent": DESKTOP, "referer": "http://edge.test/p/1"})
    mobile, desktop = origins.seen
    assert mobile.headers["cloudfront-viewer-country"] == "DE"
    assert mobile.headers["x-pz-ctx"] == "device=mobile;timezone=Europe/Berlin;channel=search"
    assert desktop.headers["x-pz-ctx"] == "device=desktop;timezone=Europe/Berlin;channel=direct"


def test_events_go_to_the_collector_and_every_set_cookie_comes_back(edge: TestClient, origins: Origins) -> None:
    origins.answer = httpx.Response(
        202,
        headers=[
            ("set-cookie", "pz_id=v1.new; Path=/; HttpOnly"),
            ("set-cookie", "other=1; Path=/"),
            ("cache-control", "no-store"),
            ("connection", "close"),
        ],
        json={"accepted": 1},
    )
    response = edge.post("/v1/events", json={"events": [{"type": "page_view"}]})
    assert response.status_code == 202
    (request,) = origins.seen
    assert str(request.url) == f"{COLLECT}/v1/events"
    assert request.method == "POST"
    assert request.content == b'{"events":[{"type":"page_view"}]}'
    assert request.headers["x-pz-known"] == "0"
    assert response.headers.get_list("set-cookie") == ["pz_id=v1.new; Path=/; HttpOnly", "other=1; Path=/"]
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"accepted": 1}


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/health"), ("GET", "/v1/profile"), ("DELETE", "/v1/profile")])
def test_health_and_profile_routes_go_to_serve(edge: TestClient, origins: Origins, method: str, path: str) -> None:
    edge.request(method, path)
    assert [(r.method, str(r.url)) for r in origins.seen] == [(method, f"{SERVE}{path}")]


def test_an_origin_status_passes_through_unchanged(edge: TestClient, origins: Origins) -> None:
    origins.answer = httpx.Response(304, headers={"etag": '"e"', "x-personalization": "personalized"})
    response = edge.get("/v1/fragments/for-you")
    assert response.status_code == 304
    assert response.headers["etag"] == '"e"'
    assert response.content == b""


def test_an_unreachable_origin_is_a_502(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    (tmp_path / "index.html").write_text("")
    app = create_app(EdgeSettings(SERVE, COLLECT, tmp_path), transport=httpx.MockTransport(refuse))
    with TestClient(app) as client:
        response = client.get("/v1/fragments/for-you")
    assert response.status_code == 502
    assert response.json()["error"] == "bad_gateway"


def test_the_shop_and_its_catalog_are_served_with_the_security_headers(edge: TestClient) -> None:
    page = edge.get("/")
    assert page.status_code == 200
    assert "<title>shop</title>" in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    catalog = edge.get("/shop/catalog.json")
    assert catalog.json() == {"items": []}


def test_no_published_model_means_no_catalog_yet(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("")
    with TestClient(create_app(EdgeSettings(SERVE, COLLECT, tmp_path), catalog=lambda: None)) as client:
        assert client.get("/shop/catalog.json").status_code == 503


def _item(item_id: str, category: str | None, popularity: float) -> CatalogItem:
    return CatalogItem(id=item_id, category=category, price=10.0, popularity=popularity, brand="acme")


def test_the_shop_lists_the_top_items_and_each_listed_categorys_best_sellers() -> None:
    catalog = Catalog(
        [_item(f"p{i}", "phones", 100 - i) for i in range(5)]
        + [_item("t0", "tv", 50), _item("t1", "tv", 1), _item("t2", "tv", 0.5)]
        + [_item("x0", "rare", 0.1), _item("n0", None, 60)]
    )
    cut = shop_catalog(catalog, "v1", top=4, categories=2, per_category=2)
    assert cut["model_version"] == "v1"
    assert [c["name"] for c in cut["categories"]] == ["phones"]
    assert cut["categories"][0] == {"name": "phones", "items": 5, "item_ids": ["p0", "p1"]}
    # The top four by popularity, in catalog order, each with what the page shows.
    assert [i["id"] for i in cut["items"]] == ["p0", "p1", "p2", "p3"]
    assert cut["items"][0] == {"id": "p0", "category": "phones", "brand": "acme", "price": 10.0}

    wider = shop_catalog(catalog, "v1", top=7, categories=2, per_category=3)
    assert [c["name"] for c in wider["categories"]] == ["phones", "tv"]
    assert wider["categories"][1]["item_ids"] == ["t0", "t1", "t2"]
    # tv's best-sellers are listed even where they fall outside the top seven.
    assert {"t1", "t2"} <= {i["id"] for i in wider["items"]}
