"""Recommendations one request at a time from a loaded run: everything behind the HTTP API but HTTP.

A Service holds the run's Recommender (model, dataset, every user's history, built once), its Catalogue and
the vector index. A request goes: the history (the user's logged one, or the one brought) -> the model's
state after its last event -> the index's best items under the filters -> raw IDs, titles, categories.
The rankings are those of :meth:`Recommender.recommend` (exactly, with the exact index; a test checks it).
User mistakes raise IntentRecError (UnknownIdError for a user or item that does not exist), which the app
turns into 4xx responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import intentrec
from intentrec.recommender import Recommender
from intentrec.run import RunFiles
from intentrec.serving.index import IndexConfig, ItemIndex
from intentrec.serving.schemas import (
    DEFAULT_HEAD,
    MAX_HISTORY,
    MAX_K,
    Head,
    Health,
    Metadata,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    SimilarResponse,
)


class ServeConfig(BaseModel):
    """The limit on request bodies, and the vector index (k and history length: see the schemas)."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body (HTTP 413 above).")
    index: IndexConfig = Field(default_factory=IndexConfig)


class Service:
    """Answers recommendation, similar-item, health and metadata requests for one run."""

    def __init__(
        self, recommender: Recommender, config: ServeConfig | None = None, run: str | Path | None = None
    ) -> None:
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

    def recommend(self, request: RecommendRequest) -> RecommendResponse:
        allowed = self.catalogue.allowed(request.include_categories, request.exclude_categories)
        if request.history is None:
            history, row = self.recommender.history, int(self.catalogue.require_users([request.user])[0])
            unknown, skipped = [], 0
        else:
            events = request.history
            stamped = events[0].timestamp is not None  # all or none, checked by the request model
            encoded = self.catalogue.encode_history(
                [event.item for event in events],
                [event.timestamp for event in events] if stamped else None,  # type: ignore[misc]
                [event.event for event in events],
                request.unknown_items,
            )
            history, row, unknown, skipped = encoded.history, 0, encoded.unknown, encoded.skipped_events
        query = self.recommender.user_vectors(history, np.array([row])).numpy()[0]
        seen = history.row(row) if request.exclude_seen else None
        items, scores = self.index.search(query, request.k, seen, allowed)
        return RecommendResponse(
            user=request.user,
            items=[RecommendedItem(**entry, head=DEFAULT_HEAD) for entry in self._entries(items, scores)],
            unknown_items=unknown,
            skipped_events=skipped,
        )

    def similar(
        self,
        item: Any,
        k: int = 10,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
    ) -> SimilarResponse:
        """The items whose vectors score highest against ``item``'s own (the model's notion of alike)."""
        index = self.catalogue.require_item(item)
        allowed = self.catalogue.allowed(include_categories, exclude_categories)
        items, scores = self.index.search(self.index.vectors[index], k, np.array([index]), allowed)
        return SimilarResponse(
            item=self.catalogue.item_ids[index],
            items=[ScoredItem(**entry) for entry in self._entries(items, scores)],
        )

    def health(self) -> Health:
        return Health(
            users=len(self.recommender.history), items=self.catalogue.n_items, index=self.index.kind
        )

    def metadata(self) -> Metadata:
        return self._metadata

    # --- internals -----------------------------------------------------------------------------------------

    def _entries(self, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        catalogue = self.catalogue
        return [
            {
                "rank": rank,
                "item": catalogue.item_ids[item],
                "score": score,
                "title": catalogue.titles[item],
                "categories": catalogue.categories[item],
            }
            for rank, (item, score) in enumerate(zip(items.tolist(), scores.tolist(), strict=True), start=1)
        ]

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
