"""The vector index against the plain reference: score every item, drop the filtered ones, sort.

Vectors have uneven norms, as trained item embeddings do, which is what makes inner-product search differ
from cosine search.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import intentrec.serving.index as index_module
from intentrec.serving.index import IndexConfig, ItemIndex

N_ITEMS, DIM = 3000, 16


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    return vectors * rng.lognormal(0, 0.3, (N_ITEMS, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)


@pytest.fixture(scope="module", params=["exact", "hnsw"])
def index(request, vectors) -> ItemIndex:
    return ItemIndex.build(vectors, IndexConfig(kind=request.param, m=16), threads=1)


def reference(vectors, query, k, exclude=(), allowed=None) -> tuple[np.ndarray, np.ndarray]:
    scores = vectors @ query
    keep = np.ones(len(vectors), dtype=bool) if allowed is None else allowed.copy()
    keep[list(exclude)] = False
    items = np.flatnonzero(keep)
    order = np.argsort(-scores[items], kind="stable")[:k]
    return items[order], scores[items][order]


def recall(found: np.ndarray, expected: np.ndarray) -> float:
    return len(set(found.tolist()) & set(expected.tolist())) / len(expected)


def test_auto_is_exact_below_the_size_and_hnsw_from_it(vectors) -> None:
    assert ItemIndex.build(vectors, IndexConfig(exact_below=N_ITEMS + 1)).kind == "exact"
    assert ItemIndex.build(vectors, IndexConfig(exact_below=N_ITEMS, m=8)).kind == "hnsw"


def test_exact_search_equals_the_reference(vectors, queries) -> None:
    index = ItemIndex.build(vectors, IndexConfig(kind="exact"))
    for query in queries:
        items, scores = index.search(query, 50)
        expected_items, expected_scores = reference(vectors, query, 50)
        assert items.tolist() == expected_items.tolist()
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_hnsw_finds_the_largest_inner_products(vectors, queries) -> None:
    index = ItemIndex.build(vectors, IndexConfig(kind="hnsw", m=16), threads=1)
    recalls = []
    for query in queries:
        items, scores = index.search(query, 50)
        assert np.all(np.diff(scores) <= 0)  # best first, exact scores
        np.testing.assert_allclose(scores, vectors[items] @ query, rtol=1e-6)
        recalls.append(recall(items, reference(vectors, query, 50)[0]))
    assert np.mean(recalls) >= 0.95


def test_items_few_links_reach_are_never_missed(vectors, queries) -> None:
    index = ItemIndex.build(vectors, IndexConfig(kind="hnsw", m=4, ef_search=10), threads=1)  # a sparse graph
    hard = set(index._poorly_linked.tolist())
    assert hard  # at m = 4 some nodes have at most one link in
    for query in queries:
        expected = reference(vectors, query, 10)[0]
        found = set(index.search(query, 10)[0].tolist())
        assert hard & set(expected.tolist()) <= found


def test_renumbering_the_graph_changes_no_result(vectors, queries) -> None:
    config = IndexConfig(kind="hnsw", m=8, ef_search=40)
    graph = index_module._build_hnsw(vectors, config, threads=1)
    params = faiss.SearchParametersHNSW(efSearch=config.ef_search)
    _, expected = graph.search(index_module._augment_queries(queries), 40, params=params)
    index = ItemIndex(vectors, graph, "hnsw", config)  # renumbers the same graph in place
    assert sorted(index._node_items.tolist()) == list(range(N_ITEMS))
    assert not np.array_equal(index._node_items, np.arange(N_ITEMS))
    for query, items in zip(queries, expected, strict=True):
        assert sorted(index._candidates(query, 40).tolist()) == sorted(items.tolist())


def test_excluded_items_are_never_returned_and_k_are_still_found(index, vectors, queries) -> None:
    for query in queries[:5]:
        best = reference(vectors, query, 30)[0]
        exclude = best[::2]  # half of the best items: the search must reach further down
        items, _ = index.search(query, 20, exclude=exclude)
        assert len(items) == 20 and not set(items.tolist()) & set(exclude.tolist())
        assert recall(items, reference(vectors, query, 20, exclude)[0]) >= 0.8


@pytest.mark.parametrize("share", [0.5, 0.02])
def test_an_allowed_mask_is_applied_whichever_way_the_search_goes(
    index, vectors, queries, share, monkeypatch
) -> None:
    allowed = np.random.default_rng(2).random(N_ITEMS) < share
    exclude = np.flatnonzero(allowed)[:5]
    for budget in (0, 2**23):  # 0: over-fetch and filter; 2**23: score the allowed items exactly
        monkeypatch.setattr(index_module, "_EXACT_SUBSET_BUDGET", budget)
        for query in queries[:5]:
            items, _ = index.search(query, 10, exclude=exclude, allowed=allowed)
            expected, _ = reference(vectors, query, 10, exclude, allowed)
            assert len(items) == 10 and allowed[items].all()
            assert not set(items.tolist()) & set(exclude.tolist())
            assert recall(items, expected) >= (1.0 if index.kind == "exact" or budget else 0.8)


def test_filters_that_leave_fewer_than_k_items_return_them_all(index, vectors, queries) -> None:
    allowed = np.zeros(N_ITEMS, dtype=bool)
    allowed[[5, 50, 500]] = True
    items, _ = index.search(queries[0], 10, exclude=np.array([50]), allowed=allowed)
    assert sorted(items.tolist()) == [5, 500]
    items, _ = index.search(queries[0], 10, allowed=np.zeros(N_ITEMS, dtype=bool))
    assert len(items) == 0


def test_k_larger_than_the_catalogue_returns_every_item(vectors, queries) -> None:
    small = ItemIndex.build(vectors[:40], IndexConfig(kind="exact"))
    items, _ = small.search(queries[0], 100, exclude=np.array([3]))
    assert sorted(items.tolist()) == sorted(set(range(40)) - {3})


# --- saved indices -----------------------------------------------------------------------------------------


def test_an_hnsw_index_is_saved_in_the_run_and_reused_while_it_matches(
    vectors, queries, tmp_path, monkeypatch
):
    config = IndexConfig(kind="hnsw", m=8)
    path = tmp_path / "index.faiss"
    built = ItemIndex.open(vectors, config, path)
    assert path.is_file() and path.with_suffix(".json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("the saved index should have been read")

    with monkeypatch.context() as patched:
        patched.setattr(index_module, "_build_hnsw", no_build)
        loaded = ItemIndex.open(vectors, config, path)
    assert loaded.search(queries[0], 10)[0].tolist() == built.search(queries[0], 10)[0].tolist()

    # other vectors or other settings: built again, and saved over the old one
    for changed_vectors, changed_config in ((vectors * 2, config), (vectors, IndexConfig(kind="hnsw", m=12))):
        stamp = path.stat().st_mtime_ns
        ItemIndex.open(changed_vectors, changed_config, path)
        assert path.stat().st_mtime_ns != stamp


def test_a_damaged_saved_index_is_built_again(vectors, queries, tmp_path, caplog) -> None:
    config, path = IndexConfig(kind="hnsw", m=8), tmp_path / "index.faiss"
    built = ItemIndex.open(vectors, config, path)
    path.write_bytes(path.read_bytes()[:1000])  # its card still matches
    with caplog.at_level("WARNING"):
        rebuilt = ItemIndex.open(vectors, config, path)
    assert "could not read the saved index" in caplog.text and "building it again" in caplog.text
    assert rebuilt.search(queries[0], 10)[0].tolist() == built.search(queries[0], 10)[0].tolist()
    assert (
        ItemIndex.open(vectors, config, path).search(queries[0], 10)[0].tolist()
        == built.search(queries[0], 10)[0].tolist()
    )  # saved whole again, and read


def test_exact_indices_are_not_saved(vectors, tmp_path) -> None:
    ItemIndex.open(vectors, IndexConfig(kind="exact"), tmp_path / "index.faiss")
    assert list(tmp_path.iterdir()) == []
