"""Recommendations from a loaded run, request by request: everything behind the HTTP API but HTTP.

A Service holds the run's Recommender (model, dataset, every user's history, built once), its Catalogue and
the vector index. A request goes through three steps:

    prepare   the history (the user's logged one, or the one brought) and the filters, in indices;
              every user mistake is raised here (IntentRecError; UnknownIdError for a user or item that
              does not exist), which the app turns into a 4xx
    rank      the model's state after the last event of each history, for many requests in one forward
              pass (vectors), then the index's best items under each request's filters (search)
    respond   raw IDs, scores, titles, categories and the head, as JSON-ready data

The rankings are those of :meth:`Recommender.recommend` (exactly with the exact index; a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import intentrec
from intentrec.data.sequences import PaddedBatch, Sequences, pad_left
from intentrec.errors import IntentRecError
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


class ServeConfig(BaseModel):
    """Processes, the limit on request bodies, and the vector index (k and history: see the schemas)."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(1, ge=1, description="Processes serving requests, sharing the loaded run.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body (HTTP 413 above).")
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
    similar_to: Any = None  # the item of a similar-items request


class Service:
    """Answers recommendation, similar-item, health and metadata requests for one run."""

    def __init__(
        self, recommender: Recommender, config: ServeConfig | None = None, run: str | Path | None = None
    ) -> None:
        if recommender.model is not None and recommender.model.heads is not None:
            # one index search with the backbone's state would ignore the heads and their category masks
            raise IntentRecError(
                "this run has prior heads, which the server cannot serve yet (it searches one vector per "
                "user); use Recommender.recommend or `intentrec recommend`, which rank with the heads."
            )
        self.recommender = recommender
        self.config = config or ServeConfig()
        self.catalogue = recommender.catalogue
        recommender.history  # noqa: B018 -- built now rather than by the first request
        vectors = np.ascontiguousarray(recommender.item_vectors().numpy(), dtype=np.float32)
        self.index = ItemIndex.open(vectors, self.config.index, RunFiles(run).index if run else None)
        self._metadata = self._describe_run(Path(run).name if run else "")

    @classmethod
    def load(cls, run: str | Path, config: ServeConfig | None = None) -> Service:
        """Serve the run folder ``run`` (see :meth:`Recommender.load`)."""
        return cls(Recommender.load(run), config, run)

    # --- requests ------------------------------------------------------------------------------------------

    def recommend(self, request: RecommendRequest) -> dict[str, Any]:
        """The body of the response to one request (the app batches the steps across requests)."""
        resolved = self.prepare(request)
        (items, scores), *_ = self.rank([resolved])
        return self.respond(resolved, items, scores)

    def prepare(self, request: RecommendRequest) -> Resolved:
        """Resolve a request against the run; every mistake in it is raised here, before any computing."""
        allowed = self.catalogue.allowed(request.include_categories, request.exclude_categories)
        if request.history is None:
            user = int(self.catalogue.require_users([request.user])[0])
            return Resolved(request, self.recommender.history, user, allowed, [], 0)
        events = request.history
        stamped = events[0].timestamp is not None  # all or none, checked by the request model
        encoded = self.catalogue.encode_history(
            [event.item for event in events],
            [event.timestamp for event in events] if stamped else None,  # type: ignore[misc]
            [event.event for event in events],
            request.unknown_items,
        )
        return Resolved(request, encoded.history, 0, allowed, encoded.unknown, encoded.skipped_events)

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
            history=[HistoryEvent(item=self.catalogue.item_ids[index])],
            k=k,
            include_categories=include_categories,
            exclude_categories=exclude_categories,
        )
        return replace(self.prepare(request), similar_to=self.catalogue.item_ids[index])

    def rank(self, requests: Sequence[Resolved]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(items, scores)`` of each request, best first: one forward pass for all, then a search each."""
        return [
            self.search(each, vector) for each, vector in zip(requests, self.vectors(requests), strict=True)
        ]

    def vectors(self, requests: Sequence[Resolved]) -> np.ndarray:
        """``(B, D)``: the model's state after each request's history, in one forward pass."""
        max_len = self.recommender.config.model.max_len
        batch = _stack([pad_left(each.history, np.array([each.row]), max_len) for each in requests])
        return self.recommender.user_vectors(batch).numpy()

    def search(self, resolved: Resolved, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The request's best items for its user vector, under its filters."""
        request = resolved.request
        seen = resolved.history.row(resolved.row) if request.exclude_seen else None
        return self.index.search(vector, request.k, seen, resolved.allowed)

    def respond(self, resolved: Resolved, items: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """The body of the response, as plain data (building the response models would cost ~1 ms)."""
        catalogue = self.catalogue
        entries = [
            {
                "rank": rank,
                "item": catalogue.item_ids[item],
                "score": score,
                "title": catalogue.titles[item],
                "categories": catalogue.categories[item],
                "head": DEFAULT_HEAD,
            }
            for rank, (item, score) in enumerate(zip(items.tolist(), scores.tolist(), strict=True), start=1)
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
            heads=[Head(name=DEFAULT_HEAD, description="The model's own next-item scores.")],
            limits={"max_k": MAX_K, "max_history": MAX_HISTORY, "max_body_bytes": config.max_body_bytes},
        )


def _stack(batches: list[PaddedBatch]) -> PaddedBatch:
    """One batch of single-row batches of different widths, left-padded to the widest."""
    width = max(batch.items.shape[1] for batch in batches)
    items = np.zeros((len(batches), width), dtype=np.int64)
    timestamps = np.zeros((len(batches), width), dtype=np.int64)
    for row, batch in enumerate(batches):
        items[row, width - batch.items.shape[1] :] = batch.items[0]
        timestamps[row, width - batch.items.shape[1] :] = batch.timestamps[0]
    return PaddedBatch(items=items, timestamps=timestamps)
