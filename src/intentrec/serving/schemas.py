"""What the HTTP API accepts and returns: the pydantic models behind its OpenAPI schema.

Requests forbid unknown fields, so a misspelt option is a 422 naming it rather than silently ignored.
Fields that later versions add are optional with defaults that mean "as before" (as ``steering``, the
weights of prior heads, is), so requests written earlier keep their meaning; responses say which head
produced each item (:data:`DEFAULT_HEAD` for a run without prior heads).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr, model_validator

from intentrec.models.heads import NEXT_ITEM_HEAD, Steering
from intentrec.settings import Settings

#: The one head of a run without prior heads: the model's own next-item scores.
DEFAULT_HEAD = NEXT_ITEM_HEAD

#: Limits on a request, stated in the schema so that clients (and fuzzers) see them.
MAX_K = 1000
MAX_HISTORY = 1000

#: A user or item ID as the user's own data spells it: a JSON integer or string.
RawId = StrictInt | Annotated[StrictStr, Field(min_length=1, max_length=512)]
Category = Annotated[str, Field(min_length=1, max_length=512)]
#: Timestamps are stored as 64-bit integers.
Timestamp = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]


class HistoryEvent(Settings):
    """One event of a history a client brings."""

    item: RawId = Field(description="Item ID, in the same ID space as the training data.")
    timestamp: Timestamp | None = Field(
        None, description="When it happened (the unit of the training data); give it for every event or none."
    )
    event: str | None = Field(
        None,
        max_length=512,
        description="Event type; events of a type the run was not trained on are skipped.",
    )


class RecommendRequest(Settings):
    """Recommend for a known user (by ID) or for anyone who brings a history: exactly one of the two."""

    user: RawId | None = Field(None, description="A user of the training data; their whole log is used.")
    history: list[HistoryEvent] | None = Field(
        None,
        min_length=1,
        max_length=MAX_HISTORY,
        description="Events oldest first, or in any order with timestamps.",
    )
    k: int = Field(10, ge=1, le=MAX_K, description="How many items to return.")
    exclude_seen: bool = Field(
        True,
        description="Never recommend an item of the history (of its events of types the run trained on, "
        "as for a known user).",
    )
    at: Timestamp | None = Field(
        None,
        description="When the items are asked for, in the log's time unit (default: now). Read by runs "
        "whose time bias is measured from the request (model.query_time 'request'); a brought history "
        "needs timestamps for it.",
    )
    include_categories: list[Category] | None = Field(
        None, description="Only items with at least one of these categories."
    )
    exclude_categories: list[Category] | None = Field(
        None, description="No item with any of these categories."
    )
    unknown_items: Literal["ignore", "reject"] = Field(
        "ignore",
        description="History items not in the catalogue: left out and listed in the response, or a 422.",
    )
    steering: Steering | None = Field(
        None,
        description="Runs with prior heads: weights on heads or prior values, or the heads to keep "
        "(names in GET /metadata). An unknown name is a 422.",
    )

    @model_validator(mode="after")
    def _user_or_history(self) -> RecommendRequest:
        if (self.user is None) == (self.history is None):
            given = "not both" if self.user is not None else "neither was given"
            raise ValueError(f"give either 'user' (a known user ID) or 'history' (a list of events), {given}")
        if self.history is not None:
            stamped = sum(event.timestamp is not None for event in self.history)
            if 0 < stamped < len(self.history):
                raise ValueError(
                    f"{stamped} of the {len(self.history)} history events have a timestamp; "
                    "give one for every event or for none"
                )
        return self


class RecommendedItem(BaseModel):
    """An item of a ranking, best first."""

    rank: int = Field(description="1 = best.")
    item: RawId
    score: float = Field(description="The model's score: inner product (cosine if the run normalises).")
    title: str | None = Field(description="From the item metadata, when the data has it.")
    categories: list[str] = Field(description="From the item metadata (empty when unknown).")
    head: str = Field(description=f"The head that produced the item ('{DEFAULT_HEAD}': the model's own).")


class RecommendResponse(BaseModel):
    user: RawId | None = Field(description="The user asked for, or null for a history.")
    items: list[RecommendedItem]
    unknown_items: list[RawId] = Field(description="History items not in the catalogue, left out.")
    skipped_events: int = Field(description="History events of a type the run was not trained on.")


class SimilarResponse(BaseModel):
    item: RawId
    items: list[RecommendedItem]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    users: int
    items: int
    index: str = Field(description="'exact' or 'hnsw'.")


class Head(BaseModel):
    name: str
    description: str


class Metadata(BaseModel):
    version: str = Field(description="IntentRec version of the server.")
    run: str = Field(description="Name of the run folder.")
    config: dict[str, Any] = Field(description="The run's config.json.")
    dataset: dict[str, Any] = Field(description="The dataset card: source, sizes, filters, fingerprint.")
    index: dict[str, Any] = Field(description="The vector index: kind and settings.")
    heads: list[Head]
    limits: dict[str, int] = Field(description="max_k, max_history, max_body_bytes.")
