"""Recommendations from a loaded run, request by request: everything behind the HTTP API but HTTP.

A Service holds the run's Recommender (model, dataset, every user's history, built once), its Catalogue and
the vector index. A request goes through three steps:

    prepare   the history (the user's logged one, or the one brought) and the filters, in indices;
              every user mistake is raised here (IntentRecError; UnknownIdError for a user or item that
              does not exist), which the app turns into a 4xx
    rank      the model's state after the last event of each history, for many requests in one forward
              pass (vectors), then the index's best items under each request's filters (search); the
              states of known users are computed once, at start, so their requests skip the model;
              a request that needs every item's score (the "mix" merge, or the backbone's own head
              "next" weighed in) is scored over the whole catalogue instead of searched, in one pass
              with the others of its batch that steer alike
    respond   raw IDs, scores, titles, categories and the head, as JSON-ready data

The rankings are those of :meth:`Recommender.recommend` (exactly with the exact index; a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

import intentrec
from intentrec.data.sequences import PaddedBatch, Sequences, pad_left
from intentrec.errors import ConfigError
from intentrec.models.heads import Merge, Steering
from intentrec.models.model import Precision
from intentrec.ranking import mask_seen, top_k
from intentrec.recommender import Recommender
from intentrec.run import RunFiles
from intentrec.serving.index import IndexConfig, ItemIndex
from intentrec.serving.schemas import (
    DEFAULT_HEAD,
    MAX_HISTORY,
    MAX_K,
    Head,
    Health,
    HistoryEvent,
    Metadata,
    RecommendRequest,
)
from intentrec.settings import Settings

#: A ranking: ``items`` and ``scores`` best first, and with prior heads the head of each item.
Ranked = tuple[np.ndarray, np.ndarray, np.ndarray | None]


class ServeConfig(Settings):
    """Processes, the limit on request bodies, and the vector index (k and history: see the schemas)."""

    workers: int = Field(1, ge=1, description="Processes serving requests, sharing the loaded run.")
    restart_after_seconds: float = Field(
        5.0,
        ge=0,
        description="With several workers, one that dies at least this long after its start is replaced; "
        "one that dies sooner is not (it would most likely die again) and the others serve on.",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body (HTTP 413 above).")
    cache_users: int = Field(
        1_000_000,
        ge=0,
        description="Compute the state of every known user at start (D floats each) when there are at "
        "most this many; their requests then skip the model. 0: never.",
    )
    exact_max_items: int = Field(
        200_000,
        ge=0,
        description="Largest catalogue for which a request that needs every item's score (merge 'mix', or "
        "the backbone's head 'next' weighed > 0) is scored item by item; above it such requests are a 422.",
    )
    precision: Precision = Field(
        "float32", description="The backbone's arithmetic: bfloat16 is faster on hardware that has it."
    )
    index: IndexConfig = Field(default_factory=IndexConfig)


@dataclass(frozen=True)
class Resolved:
    """A request resolved against the run: whose history (row ``row`` of ``history``), which items may
    be returned (``allowed``, None = all), and what to report back about the history."""

    request: RecommendRequest
    history: Sequences
    row: int
    allowed: np.ndarray | None
    unknown: list[Any]
    skipped_events: int
    request_time: int  # when the items are asked for, in the model's time unit
    similar_to: Any = None  # the item of a similar-items request
    head_weights: np.ndarray | None = None  # (H,) with prior heads: the request's steering
    merge: Merge = "max"  # with prior heads: how their scores combine
    backbone_weight: float = 0.0  # with prior heads: the weight of the backbone's own head "next"
    exact: bool = False  # every item scored (merge "mix" or backbone_weight > 0) rather than searched


class Service:
    """Answers recommendation, similar-item, health and metadata requests for one run."""

    def __init__(
        self, recommender: Recommender, config: ServeConfig | None = None, run: str | Path | None = None
    ) -> None:
        self.recommender = recommender
        assert recommender.model is not None, "a Service needs a fitted or loaded Recommender"
        self.heads = recommender.model.heads
        self.config = config or ServeConfig()
        self.catalogue = recommender.catalogue
        recommender.history  # noqa: B018 -- built now rather than by the first request
        vectors = np.ascontiguousarray(recommender.item_vectors().numpy(), dtype=np.float32)
        # (H, n_items): the items each prior head may give; as search filters, None where it is every item
        self._head_items = self.heads.allowed[1:].numpy().T if self.heads is not None else np.empty((0, 0))
        self._head_allowed = [None if row.all() else row for row in self._head_items]
        # (M, H): the distinct sets of heads that may give an item (a few hundred for 19 genres)
        self._head_sets = np.unique(self._head_items.T, axis=0)
        self.index = ItemIndex.open(vectors, self.config.index, RunFiles(run).index if run else None)
        self._user_states = self._known_user_states()
        self._metadata = self._describe_run(Path(run).name if run else "")

    @classmethod
    def load(cls, run: str | Path, config: ServeConfig | None = None) -> Service:
        """Serve the run folder ``run`` (see :meth:`Recommender.load`)."""
        config = config or ServeConfig()
        return cls(Recommender.load(run, precision=config.precision), config, run)

    # --- requests ------------------------------------------------------------------------------------------

    def recommend(self, request: RecommendRequest) -> dict[str, Any]:
        """The body of the response to one request (the app batches the steps across requests)."""
        resolved = self.prepare(request)
        (ranked,) = self.rank([resolved])
        return self.respond(resolved, *ranked)

    def prepare(self, request: RecommendRequest) -> Resolved:
        """Resolve a request against the run; every mistake in it is raised here, before any computing."""
        allowed = self.catalogue.allowed(request.include_categories, request.exclude_categories)
        steered: dict[str, Any] = {}
        if self.heads is not None:
            steering = request.steering or Steering()
            merge = steering.merge or self.heads.config.merge_rule
            backbone_weight = self.heads.backbone_weight(steering)
            # softmaxes over whole head catalogues, which the index's top k of each head never sees
            exact = merge == "mix" or backbone_weight > 0
            if exact and self.catalogue.n_items > self.config.exact_max_items:
                raise ConfigError(
                    f"this request (merge '{merge}', the backbone's head '{DEFAULT_HEAD}' weighed "
                    f"{backbone_weight:g}) needs every item's score, and the catalogue has "
                    f"{self.catalogue.n_items} items, over the server's exact_max_items "
                    f"({self.config.exact_max_items}); use merge 'max' or 'sum' with '{DEFAULT_HEAD}' "
                    "weighed 0, or raise the limit (--set exact_max_items=N)."
                )
            steered = dict(
                head_weights=self.heads.head_weights(steering).numpy(),  # checks the names
                merge=merge,
                backbone_weight=backbone_weight,
                exact=exact,
            )
        elif request.steering is not None:
            raise ConfigError("'steering' weighs prior heads, but this run has none.")
        resolved = self._resolve_history(request, allowed, steered)
        if request.steering is not None and request.steering.unexplored != 1:
            assert self.heads is not None
            whole = resolved.history.subset(np.array([resolved.row]))
            weights = self.heads.head_weights(request.steering, whole)[0]
            resolved = replace(resolved, head_weights=weights.numpy())
        return resolved

    def _resolve_history(
        self, request: RecommendRequest, allowed: np.ndarray | None, steered: dict[str, Any]
    ) -> Resolved:
        if request.history is None:
            user = int(self.catalogue.require_users([request.user])[0])
            history = self.recommender.history
            # as offline: ``at`` checked against the user's last event, or "now" and that event's time,
            # whichever is later
            asked = self.catalogue.ask(history.subset(np.array([user])), request.at)
            assert asked.request_times is not None
            return Resolved(request, history, user, allowed, [], 0, int(asked.request_times[0]), **steered)
        events = request.history
        stamped = events[0].timestamp is not None  # all or none, checked by the request model
        encoded = self.catalogue.encode_history(
            [event.item for event in events],
            [event.timestamp for event in events] if stamped else None,  # type: ignore[misc]
            [event.event for event in events],
            request.unknown_items,
            request.at,
        )
        assert encoded.history.request_times is not None
        return Resolved(
            request,
            encoded.history,
            0,
            allowed,
            encoded.unknown,
            encoded.skipped_events,
            int(encoded.history.request_times[0]),
            **steered,
        )

    def prepare_similar(
        self,
        item: Any,
        k: int = 10,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
    ) -> Resolved:
        """A similar-items request (a :class:`SimilarResponse`) as the history of one event: the model's
        "after this, that".

        For a sequential model, items are alike when people go from one to the other; the raw inner
        product of two item vectors mostly measures how large they are.
        """
        index = self.catalogue.require_item(item)  # unknown: a 404, not a history with nothing in it
        request = RecommendRequest(
            # the catalogue's own ID, unvalidated: the log may hold IDs longer than a request may send
            history=[HistoryEvent.model_construct(item=self.catalogue.item_ids[index])],
            k=k,
            include_categories=include_categories,
            exclude_categories=exclude_categories,
        )
        return replace(self.prepare(request), similar_to=self.catalogue.item_ids[index])

    def rank(self, requests: Sequence[Resolved]) -> list[Ranked]:
        """``(items, scores, heads)`` of each request, best first: one forward pass for all, then searches;
        exact requests that steer alike score the whole catalogue together, in one pass."""
        vectors = self.vectors(requests)
        ranked: dict[int, Ranked] = {}
        alike: dict[tuple[Any, ...], list[int]] = {}  # the exact requests, by their steering
        for i, each in enumerate(requests):
            if each.exact:
                key = (each.merge, each.backbone_weight, np.asarray(each.head_weights).tobytes())
                alike.setdefault(key, []).append(i)
            else:
                ranked[i] = self.search(each, vectors[i])
        for group in alike.values():
            states = np.stack([vectors[i] for i in group])
            ranked.update(
                zip(group, self._score_every_item([requests[i] for i in group], states), strict=True)
            )
        return [ranked[i] for i in range(len(requests))]

    def vectors(self, requests: Sequence[Resolved]) -> list[np.ndarray]:
        """What each request's items are scored against: ``(D,)``, or with prior heads one query per head
        ``(H, D)``, or for an exact request the state itself ``(D,)``; the states of the histories not
        cached come from one forward pass."""
        states = [self._cached_state(each) for each in requests]
        missing = [each for each, state in zip(requests, states, strict=True) if state is None]
        if missing:
            max_len = self.recommender.config.model.max_len
            batch = _stack([pad_left(each.history, np.array([each.row]), max_len) for each in missing])
            batch = replace(batch, request_times=np.array([each.request_time for each in missing]))
            computed = iter(self.recommender.user_states(batch))
            states = [next(computed) if state is None else state for state in states]
        steered = [i for i, each in enumerate(requests) if not each.exact]
        queries = self.recommender.user_queries(torch.stack([states[i] for i in steered])) if steered else []
        vectors = [state.numpy() for state in states]
        for i, query in zip(steered, queries, strict=True):
            vectors[i] = query.numpy()
        return vectors

    def cached_vector(self, resolved: Resolved) -> np.ndarray | None:
        """:meth:`vectors` of a known user's request without the model; None if not cached."""
        state = self._cached_state(resolved)
        if state is None:
            return None
        return state.numpy() if resolved.exact else self.recommender.user_queries(state[None])[0].numpy()

    def _cached_state(self, resolved: Resolved) -> torch.Tensor | None:
        if self._user_states is None or resolved.history is not self.recommender.history:
            return None
        return self._user_states[resolved.row]

    def _known_user_states(self) -> torch.Tensor | None:
        """``(n_users, D)`` every known user's state after their logged history, or None (see cache_users,
        and a model whose states depend on the time of the request)."""
        history = self.recommender.history
        model = self.recommender.model
        assert model is not None
        if not 0 < len(history) <= self.config.cache_users or model.backbone.reads_request_time:
            return None
        max_len, block = self.recommender.config.model.max_len, 1024
        return torch.cat(
            [
                self.recommender.user_states(
                    pad_left(history, np.arange(start, min(start + block, len(history))), max_len)
                )
                for start in range(0, len(history), block)
            ]
        )

    def search(self, resolved: Resolved, vector: np.ndarray) -> Ranked:
        """The request's best items for its user vector (or head queries), under its filters.

        With prior heads each head searches the items it may give, its scores shifted by the log of its
        weight. The "max" merge keeps each item's best head: the top k of the merged ranking is always
        within the heads' own top k, so with the exact index this is exactly the offline ranking. The
        "sum" merge rescores the pooled items by all their heads; an item outside every head's top n sums
        at most the log-sum-exp of its own heads' n-th scores, so n grows until the k-th pooled item
        reaches the largest such bound, and the list is the offline ranking with the exact index too.
        """
        if resolved.exact:
            return self._score_every_item([resolved], vector[None])[0]
        request = resolved.request
        if vector.ndim == 1:
            seen = resolved.history.row(resolved.row) if request.exclude_seen else None
            return (*self.index.search(vector, request.k, seen, resolved.allowed), None)
        assert resolved.head_weights is not None
        if resolved.merge != "sum":
            items, scores, heads, _ = self._search_heads(resolved, vector, request.k)
            # best first, then each item once (its best head), then the first k
            order = np.lexsort((heads, items, -scores))
            items, scores, heads = items[order], scores[order], heads[order]
            _, first = np.unique(items, return_index=True)
            keep = np.sort(first)[: request.k]
            return items[keep], scores[keep], heads[keep]
        fetched = request.k
        while True:
            items, _, _, nth = self._search_heads(resolved, vector, fetched)
            ranked = self._sum_of_heads(np.unique(items), vector, resolved.head_weights, request.k)
            # the most an item no head found can sum to, over the sets of heads an item can have
            bound = np.logaddexp.reduce(np.where(self._head_sets, nth, -np.inf), axis=1).max()
            if bound == -np.inf or (len(ranked[0]) == request.k and ranked[1][-1] >= bound):
                return ranked
            fetched *= 4

    def _search_heads(
        self, resolved: Resolved, queries: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each weighed head's ``n`` best items, pooled (items, weighted scores, heads), and ``(H,)`` each
        head's n-th weighted score: the most an item it did not find scores there (-inf where the head
        found every item it may give)."""
        seen = resolved.history.row(resolved.row) if resolved.request.exclude_seen else None
        found_items, found_scores, found_heads = [], [], []
        nth = np.full(len(queries), -np.inf)
        assert resolved.head_weights is not None
        for head, weight in enumerate(resolved.head_weights.tolist()):
            if weight <= 0:
                continue
            allowed = self._head_allowed[head]
            if allowed is None or resolved.allowed is None:
                allowed = resolved.allowed if allowed is None else allowed
            else:
                allowed = allowed & resolved.allowed
            items, scores = self.index.search(queries[head], n, seen, allowed)
            found_items.append(items)
            found_scores.append(scores + np.log(weight))
            found_heads.append(np.full(len(items), head))
            if len(items) == n:
                nth[head] = found_scores[-1][-1]
        if not found_items:
            return (
                np.empty(0, dtype=np.int64),
                np.empty(0, dtype=np.float32),
                np.empty(0, dtype=np.int64),
                nth,
            )
        return (*map(np.concatenate, (found_items, found_scores, found_heads)), nth)

    def _sum_of_heads(self, items: np.ndarray, queries: np.ndarray, weights: np.ndarray, k: int) -> Ranked:
        """The ``k`` best of ``items`` by ``log sum_c w_c exp(score_c)`` over the heads that may give each."""
        with np.errstate(divide="ignore"):  # a head weighted 0 adds nothing: log 0 = -inf
            terms = queries @ self.index.vectors[items].T + np.log(weights)[:, None]  # (H, C)
        terms = np.where(self._head_items[:, items], terms, -np.inf)
        scores, heads = np.logaddexp.reduce(terms, axis=0), terms.argmax(axis=0)
        order = np.argsort(-scores, kind="stable")[:k]
        return items[order], scores[order].astype(np.float32), heads[order]

    def _score_every_item(self, requests: Sequence[Resolved], states: np.ndarray) -> list[Ranked]:
        """The best items of each of ``requests``, which steer alike (head weights, merge and backbone
        weight), by the model's own scoring of the whole catalogue from their ``states (B, D)``, as
        :meth:`Recommender.recommend` ranks them."""
        model, steered = self.recommender.model, requests[0]
        assert model is not None and steered.head_weights is not None
        scores, heads = model.score_states(
            torch.from_numpy(states).to(model.item_embedding.weight.device),
            torch.from_numpy(steered.head_weights),
            steered.merge,
            steered.backbone_weight,
        )
        assert heads is not None  # a run with prior heads
        scores, heads = scores.cpu(), heads.cpu()
        for row, each in enumerate(requests):
            if each.request.exclude_seen:
                mask_seen(scores[row : row + 1], each.history.subset(np.array([each.row])))
            if each.allowed is not None:
                scores[row, torch.from_numpy(~each.allowed)] = float("-inf")
        top_items, top_scores = top_k(scores, max(each.request.k for each in requests))
        ranked = []
        for row, each in enumerate(requests):
            row_scores, row_items = top_scores[row, : each.request.k], top_items[row, : each.request.k]
            found = torch.isfinite(row_scores)  # filtered items only fill a list longer than what is left
            items = row_items[found].numpy()
            ranked.append((items, row_scores[found].numpy(), heads[row, items].numpy()))
        return ranked

    def respond(
        self, resolved: Resolved, items: np.ndarray, scores: np.ndarray, heads: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The body of the response, as plain data (building the response models would cost ~1 ms)."""
        ids, titles, categories = self.catalogue.item_ids, self.catalogue.titles, self.catalogue.categories
        names = [*self.heads.names, DEFAULT_HEAD] if self.heads is not None else [DEFAULT_HEAD]
        if heads is None:
            heads = np.zeros(len(items), dtype=np.int64)
        entries = [
            {
                "rank": rank,
                "item": ids[item],
                "score": score,
                "title": titles[item],
                "categories": categories[item],
                "head": names[head],
            }
            for rank, (item, score, head) in enumerate(
                zip(items.tolist(), scores.tolist(), heads.tolist(), strict=True), start=1
            )
        ]
        if resolved.similar_to is not None:
            return {"item": resolved.similar_to, "items": entries}
        return {
            "user": resolved.request.user,
            "items": entries,
            "unknown_items": resolved.unknown,
            "skipped_events": resolved.skipped_events,
        }

    def health(self) -> Health:
        return Health(
            users=len(self.recommender.history), items=self.catalogue.n_items, index=self.index.kind
        )

    def metadata(self) -> Metadata:
        return self._metadata

    # --- internals -----------------------------------------------------------------------------------------

    def _describe_run(self, name: str) -> Metadata:
        recommender = self.recommender
        assert recommender.dataset is not None
        config = self.config
        return Metadata(
            version=intentrec.__version__,
            run=name,
            config=recommender.config.to_json(),
            dataset=recommender.dataset.card.model_dump(mode="json"),
            # the kind in use, where the settings may say "auto"
            index={**config.index.model_dump(), "kind": self.index.kind, "dim": self.index.vectors.shape[1]},
            heads=self._describe_heads(),
            limits={"max_k": MAX_K, "max_history": MAX_HISTORY, "max_body_bytes": config.max_body_bytes},
        )

    def _describe_heads(self) -> list[Head]:
        if self.heads is None:
            return [Head(name=DEFAULT_HEAD, description="The model's own next-item scores.")]
        described = []
        for name, row in zip(self.heads.names, self.heads.values.tolist(), strict=True):
            values = [
                f"{prior.kind} {prior.names[v]}"
                for prior, v in zip(self.heads.priors, row, strict=True)
                if v >= 0
            ]
            described.append(Head(name=name, description=", ".join(values)))
        weight = self.heads.config.backbone_weight
        own = f"The backbone's own next-item distribution, weighed {weight:g} unless a request steers it."
        return [*described, Head(name=DEFAULT_HEAD, description=own)]


def _stack(batches: list[PaddedBatch]) -> PaddedBatch:
    """One batch of single-row batches of different widths, left-padded to the widest."""
    width = max(batch.items.shape[1] for batch in batches)
    items = np.zeros((len(batches), width), dtype=np.int64)
    timestamps = np.zeros((len(batches), width), dtype=np.int64)
    for row, batch in enumerate(batches):
        items[row, width - batch.items.shape[1] :] = batch.items[0]
        timestamps[row, width - batch.items.shape[1] :] = batch.timestamps[0]
    return PaddedBatch(items=items, timestamps=timestamps)
