"""What is served is what was evaluated: the app's rankings against the offline ones, user by user.

Three references: ``Recommender.recommend`` for known users (their whole history), the evaluator's own
ranking (``ranked_chunks`` over the test split) for the test inputs sent as raw histories, and the exact
index for the HNSW one.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from intentrec.ranking import ranked_chunks
from intentrec.recommender import Recommender
from intentrec.serving.app import create_app
from intentrec.serving.index import IndexConfig
from intentrec.serving.schemas import DEFAULT_HEAD, RecommendRequest, RecommendResponse
from intentrec.serving.service import ServeConfig, Service

K = 10


def served(client: TestClient, body: dict) -> tuple[list, list[float]]:
    response = client.post("/recommend", json={"k": K, **body})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["rank"] for item in items] == list(range(1, len(items) + 1))
    return [item["item"] for item in items], [item["score"] for item in items]


def test_served_rankings_equal_recommend_for_every_known_user(client, recommender) -> None:
    offline = recommender.recommend(k=K)  # every user, exact full ranking
    for user, table in offline.group_by("user", maintain_order=True):
        items, scores = served(client, {"user": user[0]})
        assert items == table["item"].to_list()
        np.testing.assert_allclose(scores, table["score"].to_numpy(), rtol=1e-4, atol=1e-5)


def test_served_rankings_equal_the_evaluators_on_the_test_inputs(client, recommender) -> None:
    """Each test user's input history, sent as raw IDs with timestamps, ranks as the evaluator ranked it."""
    test = recommender.split.test
    catalogue = recommender.catalogue
    config = recommender.config
    for rows, top_items, top_scores in ranked_chunks(
        lambda batch, histories: recommender._score(batch, histories)[0],
        test.history,
        K,
        config.model.max_len,
        chunk_size=64,
    ):
        for row, expected_items, expected_scores in zip(rows, top_items.tolist(), top_scores, strict=True):
            start, end = test.history.offsets[row], test.history.offsets[row + 1]
            history = [
                {"item": catalogue.item_ids[item], "timestamp": int(time)}
                for item, time in zip(
                    test.history.items[start:end], test.history.timestamps[start:end], strict=True
                )
            ]
            items, scores = served(client, {"history": history})
            assert items == [catalogue.item_ids[item] for item in expected_items]
            np.testing.assert_allclose(scores, expected_scores.numpy(), rtol=1e-4, atol=1e-5)


def test_the_python_api_gives_the_served_ranking_for_a_history(client, recommender) -> None:
    history = ["i4", "i5", "unknown", "i6"]
    body = {"history": [{"item": item} for item in history], "include_categories": ["odd", "three"]}
    items, scores = served(client, body)
    table = recommender.recommend_history(history, k=K, include_categories=["odd", "three"])
    assert table.columns == ["rank", "item", "score", "head"]
    assert set(table["head"]) == {DEFAULT_HEAD}
    assert table["item"].to_list() == items
    np.testing.assert_allclose(table["score"].to_numpy(), scores, rtol=1e-5)
    assert items[0] == "i7"  # the model learned what comes after i6


@pytest.mark.parametrize("filters", [{}, {"exclude_categories": ["three"]}, {"include_categories": ["odd"]}])
def test_the_hnsw_index_serves_the_exact_rankings_on_a_small_catalogue(run, client, filters) -> None:
    hnsw = TestClient(create_app(Service.load(run, ServeConfig(index=IndexConfig(kind="hnsw", m=8)))))
    for user in ("u0", "u7", "u42"):
        assert served(hnsw, {"user": user, **filters})[0] == served(client, {"user": user, **filters})[0]
    assert (run / "index.faiss").is_file()  # built once, kept in the run for the next start


def test_served_in_bfloat16_the_top_items_stay(run, client) -> None:
    low = Service.load(run, ServeConfig(precision="bfloat16"))
    assert low.recommender.model.inference_dtype == "bfloat16"
    for user in ("u0", "u7", "u42"):
        items, scores = served(TestClient(create_app(low)), {"user": user})
        exact_items, exact_scores = served(client, {"user": user})
        assert items[:3] == exact_items[:3]  # a trained cycle: its next items are far ahead of the rest
        np.testing.assert_allclose(scores, exact_scores, rtol=0.05, atol=0.05)


def test_a_batch_of_requests_ranks_as_each_request_alone(service) -> None:
    """The batched forward pass pads histories of different lengths together; nothing else changes."""
    requests = [
        RecommendRequest(user="u1", k=K),
        RecommendRequest(history=[{"item": "i3"}], k=K, include_categories=["odd"]),
        RecommendRequest(user="u2", k=3, exclude_seen=False),
        RecommendRequest(history=[{"item": f"i{i}"} for i in range(14)], k=K),
    ]
    queries = [service.prepare(request) for request in requests]
    together = service.rank(queries)
    for query, (items, scores, _) in zip(queries, together, strict=True):
        (alone_items, alone_scores, _), *_ = service.rank([query])
        assert items.tolist() == alone_items.tolist()
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5, atol=1e-6)
    # and what is served is what the response schema says
    RecommendResponse.model_validate(service.respond(queries[1], *together[1]))


def test_known_users_are_served_from_states_computed_at_start(recommender, monkeypatch) -> None:
    cached, uncached = Service(recommender), Service(recommender, ServeConfig(cache_users=0))
    requests = [RecommendRequest(user=user, k=K) for user in ("u0", "u7", "u42")]
    expected = uncached.rank([uncached.prepare(request) for request in requests])

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran for a known user")

    monkeypatch.setattr(recommender, "user_states", no_model)
    resolved = [cached.prepare(request) for request in requests]
    for each, (items, scores, _) in zip(resolved, expected, strict=True):
        assert cached.rank([each])[0][0].tolist() == items.tolist()
        np.testing.assert_allclose(
            cached.cached_vector(each) @ cached.index.vectors[items].T, scores, rtol=1e-5
        )
    assert uncached.cached_vector(resolved[0]) is None
    assert Service(recommender, ServeConfig(cache_users=10)).cached_vector(resolved[0]) is None  # too many
    with pytest.raises(AssertionError, match="the model ran"):  # a history brought in a request is not known
        cached.rank([cached.prepare(RecommendRequest(history=[{"item": "i3"}], k=K))])


def test_a_model_that_reads_the_request_time_serves_what_was_evaluated(asked_run, monkeypatch) -> None:
    recommender = Recommender.load(asked_run)
    service = Service(recommender)
    client = TestClient(create_app(service))
    # test inputs sent with their timestamps and asked at the test target's time rank as evaluated
    test, max_len = recommender.split.test, recommender.config.model.max_len
    score = lambda batch, histories: recommender._score(batch, histories)[0]  # noqa: E731
    rows, top_items, top_scores = next(ranked_chunks(score, test.history, K, max_len, chunk_size=16))
    for row, expected_items, expected_scores in zip(rows, top_items.tolist(), top_scores, strict=True):
        start, end = test.history.offsets[row], test.history.offsets[row + 1]
        events = zip(test.history.items[start:end], test.history.timestamps[start:end], strict=True)
        history = [{"item": recommender.catalogue.item_ids[item], "timestamp": int(t)} for item, t in events]
        items, scores = served(client, {"history": history, "at": int(test.history.request_times[row])})
        assert items == [recommender.catalogue.item_ids[item] for item in expected_items]
        np.testing.assert_allclose(scores, expected_scores.numpy(), rtol=1e-4, atol=1e-5)
    # a known user: the state depends on when it is asked for, so none is cached at start
    asked_at = 1_600_000_000 + 3_600
    assert service.cached_vector(service.prepare(RecommendRequest(user="u0", at=asked_at))) is None
    table = recommender.recommend("u0", k=K, at=asked_at)
    items, scores = served(client, {"user": "u0", "at": asked_at})
    assert items == table["item"].to_list()
    np.testing.assert_allclose(scores, table["score"].to_numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(served(client, {"user": "u0", "at": asked_at + 10**7})[1], scores)
    # a server clock behind the log's last event: asked at that event, as offline
    with monkeypatch.context() as patched:
        patched.setattr(
            recommender.catalogue, "request_time", lambda at=None: 1_500_000_000 if at is None else at
        )
        items, scores = served(client, {"user": "u0"})
        table = recommender.recommend("u0", k=K)
    assert items == table["item"].to_list()
    np.testing.assert_allclose(scores, table["score"].to_numpy(), rtol=1e-4, atol=1e-5)
    # a history without timestamps is numbered 0, 1, 2, ...: a time of day cannot be placed among them
    response = client.post("/recommend", json={"history": [{"item": "i3"}], "at": asked_at})
    assert response.status_code == 422 and "no timestamps" in response.text
    response = client.post("/recommend", json={"user": "u0", "at": 1_600_000_000})  # u0's log is later
    assert response.status_code == 422 and "before the last event" in response.text
