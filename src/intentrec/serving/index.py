"""Top-k items for a user vector by inner product: exact for small catalogues, HNSW above a size.

The scores are the model's own, ``<user, item>`` (cosine when the run normalises, since both sides are
then unit vectors). Exact search is faiss' ``IndexFlatIP``. The approximate index is HNSW (Malkov &
Yashunin, TPAMI 2018), built on the items turned into a nearest-neighbour problem: HNSW assumes a metric,
and inner product is not one (an item is not its own best match), so a graph built on raw inner products
navigates badly (recall@100 under 0.2 on SASRec's Amazon Beauty embeddings at efSearch 512). Appending
``sqrt(R² - |x|²)`` to every item vector, R the largest norm, and 0 to the query gives
``|q - x|² = |q|² + R² - 2 <q, x>``: the nearest items by L2 are exactly those with the largest inner
products (Bachrach et al., RecSys 2014), and HNSW does well on that (recall@100 0.97 on the same data).
Whatever the index, the candidates' scores are recomputed exactly from the item vectors.

Filters (seen items, categories) are applied after the search: fetch more than k, drop what is filtered,
fetch again with a larger budget while fewer than k are left. A filter that allows few items is answered
by scoring just those items, exactly, which is cheaper than searching past everything it rejects.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from pydantic import Field

from intentrec.settings import Settings
from intentrec.storage import write_json, write_with

log = logging.getLogger("intentrec")

#: Multiply-adds below which filtered items are scored exactly instead of searched (~1 ms on one core).
_EXACT_SUBSET_BUDGET = 2**23

_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # linux/mman.h


class IndexConfig(Settings):
    """Which vector index answers queries, and how the approximate one trades recall for speed."""

    kind: Literal["auto", "exact", "hnsw"] = Field(
        "auto", description="'auto' is exact below `exact_below` items and HNSW from there on."
    )
    exact_below: int = Field(100_000, ge=0, description="'auto': catalogues this small are searched exactly.")
    m: int = Field(32, ge=4, le=256, description="HNSW: links per node (memory and build time vs recall).")
    ef_construction: int = Field(200, ge=8, description="HNSW: candidates kept while building the graph.")
    ef_search: int = Field(
        768,  # recall@100 0.994 on the 1M-item benchmark (BENCHMARKS.md); 512 gives 0.989
        ge=1,
        description="HNSW: candidates kept while searching (recall vs latency), at least k.",
    )


class ItemIndex:
    """Searches ``vectors (n_items, D)`` (row ``i`` = dataset item ``i``) for the largest inner products."""

    def __init__(self, vectors: np.ndarray, index: faiss.Index, kind: str, config: IndexConfig) -> None:
        """``index`` answers for ``vectors``; an HNSW one is renumbered in place for speed (``_lay_out``)."""
        self.vectors = vectors
        self.kind = kind
        self.config = config
        self._index = index
        # items a search seldom reaches, if ever: every search scores them too (before renumbering, node i
        # is item i)
        self._poorly_linked = _poorly_linked(index) if kind == "hnsw" else np.empty(0, dtype=np.int64)
        # (n_items,): the item each HNSW node stands for once the nodes are renumbered
        self._node_items = _lay_out(index) if kind == "hnsw" else None

    @property
    def n_items(self) -> int:
        return len(self.vectors)

    # --- building and loading ------------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig, threads: int | None = None) -> ItemIndex:
        """Index ``vectors`` (float32, C order) as ``config`` says; HNSW is built on ``threads`` cores."""
        kind = _resolve_kind(config, len(vectors))
        if kind == "exact":
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            return cls(vectors, index, kind, config)
        return cls(vectors, _build_hnsw(vectors, config, threads), kind, config)

    @classmethod
    def open(cls, vectors: np.ndarray, config: IndexConfig, path: Path | None = None) -> ItemIndex:
        """The index ``build`` gives, read from ``path`` when the index saved there was built the same way.

        An HNSW index takes minutes to build for a million items, so it is saved at ``path`` (in the run
        folder), with a card of what it was built from next to it (``.json``), and reused as long as the
        item vectors and the HNSW settings are unchanged.
        """
        kind = _resolve_kind(config, len(vectors))
        if kind == "exact" or path is None:
            return cls.build(vectors, config)
        card, card_path = _card(vectors, config), path.with_suffix(".json")
        if path.is_file() and card_path.is_file() and json.loads(card_path.read_text("utf-8")) == card:
            log.info("reading the HNSW index from %s", path)
            try:
                return cls(vectors, faiss.read_index(str(path)), kind, config)
            except RuntimeError as error:  # a damaged file: the card cannot tell, faiss can
                log.warning("could not read the saved index %s (%s); building it again", path, error)
        log.info("building an HNSW index over %d items, saved as %s for the next start", len(vectors), path)
        built = _build_hnsw(vectors, config)
        try:  # saved before ItemIndex renumbers its nodes, so the saved node i is item i
            write_with(path, lambda tmp: faiss.write_index(built, str(tmp)))
            write_json(card_path, card)
        except OSError as error:  # a read-only run folder: serve anyway, build again next time
            log.warning("could not save the index as %s: %s", path, error)
        return cls(vectors, built, kind, config)

    # --- search --------------------------------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for ``query (D,)``: ``(items (<= k,), scores (<= k,))``, best first.

        ``exclude`` are item indices never returned (e.g. the user's history); ``allowed`` is an
        ``(n_items,)`` bool mask of the items that may be returned (e.g. a category filter). Fewer than
        ``k`` items come back only when the filters leave fewer.
        """
        query = np.ascontiguousarray(query, dtype=np.float32)
        exclude = np.unique(exclude) if exclude is not None else np.empty(0, dtype=np.int64)
        n = self.n_items
        fetch = k + len(exclude)  # enough when only excluded items are dropped
        if allowed is not None:
            n_allowed = int(np.count_nonzero(allowed))
            if n_allowed * self.vectors.shape[1] <= _EXACT_SUBSET_BUDGET:
                return self._exact(query, k, np.setdiff1d(np.flatnonzero(allowed), exclude))
            fetch = int(fetch * n / max(n_allowed, 1) * 1.2)  # expect a share n_allowed / n to pass
        while fetch < n // 4:  # past that, scoring every item is cheaper than searching
            items = self._candidates(query, fetch)
            keep = ~_member(items, exclude)
            if allowed is not None:
                keep &= allowed[items]
            if np.count_nonzero(keep) >= k:
                extra = self._poorly_linked[~_member(self._poorly_linked, exclude)]
                if allowed is not None:
                    extra = extra[allowed[extra]]
                return self._exact(query, k, np.union1d(items[keep], extra))
            fetch *= 2
        candidates = np.ones(n, dtype=bool) if allowed is None else allowed.copy()
        candidates[exclude] = False
        return self._exact(query, k, np.flatnonzero(candidates))

    def _candidates(self, query: np.ndarray, fetch: int) -> np.ndarray:
        """Item indices of (about) the ``fetch`` best items, in no particular order."""
        if self.kind == "exact":
            _, items = self._index.search(query[None], fetch)
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, fetch))
            _, items = self._index.search(_augment_queries(query[None]), fetch, params=params)
        items = items[0]
        items = items[items >= 0]  # faiss pads with -1 when it finds fewer
        return items if self._node_items is None else self._node_items[items]

    def _exact(self, query: np.ndarray, k: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of ``items`` by exact score, best first."""
        scores = self.vectors[items] @ query
        if len(items) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            items, scores = items[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return items[order], scores[order]


def _member(items: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(items, sorted_set)`` for a sorted, unique ``sorted_set``, without its 0.1 ms of checks."""
    if len(sorted_set) == 0:
        return np.zeros(len(items), dtype=bool)
    at = np.searchsorted(sorted_set, items).clip(max=len(sorted_set) - 1)
    return sorted_set[at] == items


def _build_hnsw(vectors: np.ndarray, config: IndexConfig, threads: int | None = None) -> faiss.IndexHNSWFlat:
    """The HNSW graph of ``vectors`` reduced to nearest neighbours, node ``i`` = item ``i``."""
    index = faiss.IndexHNSWFlat(vectors.shape[1] + 1, config.m)
    index.hnsw.efConstruction = config.ef_construction
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
    try:
        index.add(_augment_items(vectors))
    finally:
        faiss.omp_set_num_threads(previous)
    return index


def _poorly_linked(index: faiss.IndexHNSWFlat, block: int = 65_536) -> np.ndarray:
    """The nodes at most one other node links to in the bottom layer, where every search ends.

    HNSW's pruning can leave a node with one link in, or none: a search then reaches it only through
    that neighbour, if at all, and misses it for queries it should answer. Among the 9,742 items of a
    latest-small SASRec, 11 nodes at m = 32, 87 at m = 16 and 911 at m = 8 are such; of the top-20 items
    of its 610 users, the search missed 4 at m = 16 (3 of them such nodes) and 7 at m = 8 (all 7). Scored
    exactly on every search, they are never missed, for a few hundred multiply-adds per query at m >= 16.
    """
    hnsw, n = index.hnsw, index.ntotal
    neighbours = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())  # a view, -1 = none
    starts = faiss.vector_to_array(hnsw.offsets)[:-1].astype(np.int64)
    level0 = np.arange(hnsw.nb_neighbors(0))
    links_in = np.zeros(n, dtype=np.int64)
    for first in range(0, n, block):  # (block, links) at a time: a million nodes' links at once is 256 MB
        linked = neighbours[starts[first : first + block, None] + level0].ravel()
        links_in += np.bincount(linked[linked >= 0], minlength=n)
    return np.flatnonzero(links_in <= 1)


def _lay_out(index: faiss.IndexHNSWFlat) -> np.ndarray:
    """Renumber ``index``'s nodes breadth-first from its entry point and back its arrays with 2 MB pages,
    in place; returns ``(n,)`` the old number (the item) of each new node.

    A search is a chain of memory misses: each hop reads a node's neighbour list, then the vectors of its
    neighbours, scattered over a gigabyte for a million items. Numbered breadth-first, a node's
    neighbours lie near each other and near it, and with 2 MB pages the hops stop missing the address
    translation cache too: 1.66x faster search on the 1M-item benchmark (BENCHMARKS.md), same results.
    """
    hnsw, n = index.hnsw, index.ntotal
    neighbours = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())  # a view, -1 = none
    starts = faiss.vector_to_array(hnsw.offsets)[:-1].astype(np.int64)
    level0 = np.arange(hnsw.nb_neighbors(0))  # a node's bottom-layer links come first in its range
    order, seen = [], np.zeros(n, dtype=bool)
    frontier = np.array([max(hnsw.entry_point, 0)])
    seen[frontier] = True
    while len(frontier):
        order.append(frontier)
        linked = neighbours[starts[frontier][:, None] + level0].ravel()
        linked = linked[linked >= 0]
        linked = linked[~seen[linked]]
        _, first = np.unique(linked, return_index=True)
        frontier = linked[np.sort(first)]  # each once, in the order they were reached
        seen[frontier] = True
    order.append(np.flatnonzero(~seen))  # nodes the bottom layer does not reach from the entry point
    order = np.concatenate(order).astype(np.int64)
    index.permute_entries(order)
    storage = faiss.downcast_index(index.storage).codes
    _huge_pages(int(storage.data()), storage.size())
    _huge_pages(int(hnsw.neighbors.data()), hnsw.neighbors.size() * 4)
    return order


def _huge_pages(address: int, size: int) -> None:
    """Back the 2 MB pages inside ``[address, address + size)`` with huge pages now, where Linux can
    (``MADV_COLLAPSE``, Linux >= 6.1, even when transparent huge pages are only on request); else nothing."""
    if not sys.platform.startswith("linux"):
        return
    huge = 1 << 21
    start, end = -(-address // huge) * huge, (address + size) // huge * huge
    if end <= start:
        return
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise(start, end - start, _MADV_HUGEPAGE)  # later faults in the range get huge pages too
    madvise(start, end - start, _MADV_COLLAPSE)  # fails harmlessly on older kernels


def _resolve_kind(config: IndexConfig, n_items: int) -> str:
    if config.kind == "auto":
        return "exact" if n_items < config.exact_below else "hnsw"
    return config.kind


def _augment_items(vectors: np.ndarray) -> np.ndarray:
    """``(n, D)`` -> ``(n, D + 1)``: every item at distance R from the origin (see the module docstring)."""
    squared = np.einsum("nd,nd->n", vectors, vectors)
    extra = np.sqrt(np.maximum(squared.max() - squared, 0.0))
    return np.ascontiguousarray(np.hstack([vectors, extra[:, None]]), dtype=np.float32)


def _augment_queries(queries: np.ndarray) -> np.ndarray:
    return np.hstack([queries, np.zeros((len(queries), 1), dtype=np.float32)])


def _card(vectors: np.ndarray, config: IndexConfig) -> dict[str, object]:
    """What a saved HNSW index was built from; it is reused only when all of it matches."""
    return {
        "kind": "hnsw",
        "m": config.m,
        "ef_construction": config.ef_construction,
        "n_items": len(vectors),
        "dim": vectors.shape[1],
        "vectors_blake2b": hashlib.blake2b(np.ascontiguousarray(vectors).data, digest_size=16).hexdigest(),
    }
