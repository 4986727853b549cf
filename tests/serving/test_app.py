"""The HTTP API: each route, the bearer token, and every kind of bad request answered by a clear 4xx."""

from __future__ import annotations

import os
import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from intentrec.config import RunConfig
from intentrec.recommender import Recommender
from intentrec.serving.app import create_app
from intentrec.serving.service import ServeConfig, Service

N_ITEMS = 30  # the catalogue of conftest.py
TOKEN = "s3cret-token"  # the token of the `locked` client

# --- the routes --------------------------------------------------------------------------------------------


def test_recommend_for_a_known_user_speaks_raw_ids_with_metadata(client, recommender) -> None:
    body = client.post("/recommend", json={"user": "u3", "k": 5}).json()
    assert body["user"] == "u3" and body["unknown_items"] == [] and body["skipped_events"] == 0
    items = body["items"]
    assert len(items) == 5
    history = recommender.history.row(recommender.catalogue.user_index("u3"))
    seen = {recommender.catalogue.item_ids[item] for item in history}
    assert not {item["item"] for item in items} & seen  # seen items are excluded by default
    first = items[0]
    number = int(first["item"][1:])
    assert first["head"] == "next"
    assert first["title"] == f"Item {number}" and ("even" in first["categories"]) == (number % 2 == 0)


def test_exclude_seen_false_may_return_history_items(client) -> None:
    body = client.post("/recommend", json={"history": [{"item": "i3"}], "k": N_ITEMS, "exclude_seen": False})
    assert "i3" in [item["item"] for item in body.json()["items"]]


def test_a_history_is_answered_with_what_comes_next_and_unknown_items_reported(client) -> None:
    history = [{"item": "i10"}, {"item": "ghost"}, {"item": "i11"}, {"item": 404}]
    body = client.post("/recommend", json={"history": history, "k": 3}).json()
    assert body["user"] is None
    assert body["unknown_items"] == ["ghost", 404]
    assert body["items"][0]["item"] == "i12"  # what comes after i11 in the cycle
    assert {"i10", "i11"}.isdisjoint(item["item"] for item in body["items"])


def test_category_filters(client) -> None:
    body = {"user": "u5", "k": 20, "include_categories": ["odd"], "exclude_categories": ["three"]}
    items = client.post("/recommend", json=body).json()["items"]
    assert items and all("odd" in item["categories"] and "three" not in item["categories"] for item in items)


def test_an_item_without_metadata_has_no_title_and_no_categories(client) -> None:
    items = client.post("/recommend", json={"user": "u1", "k": N_ITEMS, "exclude_seen": False}).json()[
        "items"
    ]
    (bare,) = [item for item in items if item["item"] == "i29"]
    assert bare["title"] is None and bare["categories"] == []


def test_similar_items_are_what_the_model_ranks_after_the_item(client) -> None:
    body = client.get("/items/i7/similar", params={"k": 4}).json()
    assert body["item"] == "i7" and len(body["items"]) == 4
    assert "i7" not in [item["item"] for item in body["items"]]
    history = client.post("/recommend", json={"history": [{"item": "i7"}], "k": 4}).json()
    assert body["items"] == history["items"]
    only_odd = client.get("/items/i7/similar", params={"k": 4, "include_categories": "odd"}).json()["items"]
    assert all("odd" in item["categories"] for item in only_odd)


def test_similar_takes_every_item_id_of_the_catalogue(make_dataset) -> None:
    # IDs a request may not send in a history (over 512 characters) or that hold a slash
    ids = ["a/b", "x" * 600, "c"]
    rows = [(f"u{user}", ids[(user + t) % 3], 1_600_000_000 + t) for user in range(6) for t in range(4)]
    settings = {"model": {"dim": 8, "n_blocks": 1, "max_len": 5}, "train": {"epochs": 1, "threads": 1}}
    recommender = Recommender(RunConfig.from_dict({**settings, "eval": {"ks": [10]}})).fit(make_dataset(rows))
    client = TestClient(create_app(Service(recommender)))
    for item in ids:
        response = client.get(f"/items/{quote(item, safe='')}/similar", params={"k": 2})
        assert response.status_code == 200, response.text
        assert response.json()["item"] == item
        assert item not in [listed["item"] for listed in response.json()["items"]]
    assert client.get("/items/a/b/similar").json()["item"] == "a/b"


def test_health_and_metadata(client, recommender) -> None:
    assert client.get("/health").json() == {"status": "ok", "users": 120, "items": N_ITEMS, "index": "exact"}
    metadata = client.get("/metadata").json()
    assert metadata["config"] == recommender.config.to_json()
    assert metadata["dataset"]["fingerprint"] == recommender.dataset.card.fingerprint
    assert metadata["heads"] == [{"name": "next", "description": "The model's own next-item scores."}]
    assert metadata["index"]["kind"] == "exact"
    assert metadata["limits"] == {"max_k": 1000, "max_history": 1000, "max_body_bytes": 1_000_000}


def test_the_docs_and_the_schema_are_served(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()  # the page must work offline
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)
    assert len(assets) == 3  # the script, the style sheet and the icon
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert client.get("/redoc").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/items/{item}/similar", "/health", "/metadata"} <= set(paths)


# --- the bearer token --------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_without_the_right_token_every_route_but_health_and_docs_is_refused(locked, headers) -> None:
    for response in (
        locked.post("/recommend", json={"user": "u1"}, headers=headers),
        locked.get("/items/i1/similar", headers=headers),
        locked.get("/metadata", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer <token>" in response.json()["detail"]
    assert locked.get("/health").status_code == 200
    assert locked.get("/openapi.json").status_code == 200


def test_with_the_token_everything_answers(locked) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.post("/recommend", json={"user": "u1"}, headers=headers).status_code == 200
    assert locked.get("/items/i1/similar", headers=headers).status_code == 200
    assert locked.get("/metadata", headers=headers).status_code == 200
    assert "HTTPBearer" in locked.get("/openapi.json").json()["components"]["securitySchemes"]


# --- bad requests ------------------------------------------------------------------------------------------

BAD_REQUESTS = [
    # (body, status, words the message must contain)
    ({"user": "u1", "history": [{"item": "i1"}]}, 422, "(a list of events), not both"),
    ({"k": 5}, 422, "(a list of events), neither was given"),
    ({"user": "u1", "kk": 5}, 422, "Extra inputs are not permitted"),
    ({"user": "u1", "k": 0}, 422, "greater than or equal to 1"),
    ({"user": "u1", "k": "ten"}, 422, "k: expected a number"),
    ({"user": "u1", "k": True}, 422, "k: expected a number"),  # not k = 1
    ({"user": "u1", "exclude_seen": "no"}, 422, "exclude_seen: expected true or false"),
    ({"user": "u1", "steering": {"values": {"Drama": True}}}, 422, "values.Drama: expected a number"),
    # a weight beyond float32 would overflow into an error or an Infinity score: refused, with the field
    ({"user": "u1", "steering": {"unexplored": 1e39}}, 422, "less than or equal to 1000000000"),
    ({"user": "u1", "steering": {"heads": {"Drama": 1e39}}}, 422, "weights must be from 0 to 1e+09"),
    ({"user": "u1", "k": 1001}, 422, "less than or equal to 1000"),
    ({"history": [{"item": "i1"}] * 1001}, 422, "at most 1000 items"),
    ({"user": True}, 422, "user"),
    ({"user": "nobody"}, 404, "unknown user id(s) ['nobody']"),
    ({"history": []}, 422, "at least 1 item"),
    (
        {"history": [{"item": "i1"}, {"item": "i2", "timestamp": 5}]},
        422,
        "1 of the 2 history events have a timestamp",
    ),
    ({"history": [{"item": "i1", "timestamp": "noon"}]}, 422, "valid integer"),
    ({"history": [{"item": "i1", "timestamp": 2**63}]}, 422, "less than or equal to 9223372036854775807"),
    (
        {"history": [{"item": "x"}, {"item": "i2"}], "unknown_items": "reject"},
        422,
        "not in the catalogue: ['x']",
    ),
    (
        {"history": [{"item": "x"}]},
        422,
        "no event of the history is left to recommend from: 1 item(s) not in the catalogue: ['x']",
    ),
    ({"user": "u1", "include_categories": ["od"]}, 422, "unknown category 'od' (did you mean 'odd'?)"),
    ({"user": "u1", "unknown_items": "drop"}, 422, "'ignore' or 'reject'"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_REQUESTS)
def test_bad_recommend_requests_get_a_4xx_that_says_why(client, body, status, words) -> None:
    response = client.post("/recommend", json=body)
    assert response.status_code == status, response.text
    assert words in response.text


def test_a_422_does_not_send_a_long_input_back_whole(client) -> None:
    response = client.post("/recommend", json={"history": [{"item": f"item {i}"} for i in range(1001)]})
    assert response.status_code == 422 and "at most 1000 items" in response.text
    assert len(response.text) < 1000 and "characters)" in response.json()["detail"][0]["input"]


@pytest.mark.parametrize(
    "body", ['{"user": "u1", "k": NaN}', '{"user": "u1", "k": Infinity}', '{"history": [{"item": NaN}]}']
)
def test_nan_or_infinity_in_a_body_is_a_422_that_names_it(client, body) -> None:
    response = client.post("/recommend", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["input"] in ("NaN", "Infinity")


def test_a_body_that_is_not_json_is_a_422(client) -> None:
    response = client.post("/recommend", content=b"{user: 1", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON decode error" in response.text


@pytest.mark.parametrize("streamed", [False, True])
def test_a_body_over_the_limit_is_a_413_naming_it(client, streamed) -> None:
    body = b"[" + b" " * 1_000_000 + b"]"
    content = iter([body[:500_000], body[500_000:]]) if streamed else body  # streamed: no Content-Length
    response = client.post("/recommend", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert (
        response.json()["detail"] == "the request body is larger than this server accepts (1,000,000 bytes)."
    )


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/items/nope/similar", 404, "unknown item id 'nope'"),
        ("/items/i1/similar?k=0", 422, "greater than or equal to 1"),
        ("/items/i1/similar?k=5000", 422, "less than or equal to 1000"),
        ("/items/i1/similar?exclude_categories=evn", 422, "did you mean 'even'?"),
    ],
)
def test_bad_similar_requests_get_a_4xx_that_says_why(client, path, status, words) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert words in response.text


def test_a_worker_with_one_core_searches_on_its_event_loop_with_the_same_answers(run, client) -> None:
    one_core_each = ServeConfig(workers=os.cpu_count() or 1)  # no search thread: it would buy nothing
    inline = TestClient(create_app(Service.load(run, one_core_each)))
    for body in (
        {"user": "u3", "k": 10},
        {"history": [{"item": "i4"}], "k": 5, "exclude_categories": ["odd"]},
    ):
        assert inline.post("/recommend", json=body).json() == client.post("/recommend", json=body).json()
