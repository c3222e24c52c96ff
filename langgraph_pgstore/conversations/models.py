"""Typed return objects of the conversations API, and the chain-analysis model (seed 003)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChainAnalysis",
    "ChainLink",
    "Message",
    "MessageHit",
    "Row",
    "Session",
    "SessionStats",
    "StoredChainAnalysis",
    "User",
]

SessionStatus = Literal["active", "archived"]


class Row(BaseModel):
    """A row read back: immutable; columns the model doesn't name are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class User(Row):
    """A user: ``external_id`` is the identity (the application's user id); ``id`` is internal."""

    id: UUID
    external_id: str
    email: str | None = None
    name: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    owner_id: str | None = None
    """The same as ``external_id``: a user owns its own row."""


class Session(Row):
    """One LangGraph thread (``thread_id`` is unique)."""

    id: UUID
    thread_id: str
    user_id: UUID | None = None
    owner_id: str | None = None
    """The owning user's external id (None: unowned)."""
    title: str | None = None
    status: SessionStatus = "active"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    message_count: int
    """Messages the session shows (removed ones not counted)."""


class Message(Row):
    """One message of a session. ``position`` is its index in the thread's current state.

    ``removed_at`` is set when the message left the state (RemoveMessage, or a fork that does
    not contain it); such rows are hidden unless ``include_removed=True``.
    """

    id: int
    session_id: UUID
    owner_id: str | None = None
    message_id: str | None = None
    position: int
    role: str
    name: str | None = None
    content: str = ""
    content_parts: list[Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    created_at: datetime
    removed_at: datetime | None = None


class MessageHit(Row):
    """A search result: the message and its cosine distance to the query (lower is closer)."""

    message: Message
    distance: float


class SessionStats(Row):
    session_id: UUID
    message_count: int
    by_role: dict[str, int]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    first_message_at: datetime | None = None
    last_message_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class ChainLink(BaseModel):
    """One link of a DBT behaviour chain; every link carries its own timestamp."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="e.g. thought, emotion, sensation, action, event")
    description: str
    timestamp: datetime = Field(default_factory=_now)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


class ChainAnalysis(BaseModel):
    """The seed-003 chain analysis of a session; usable as a structured-output schema."""

    model_config = ConfigDict(extra="forbid")

    vulnerabilities: list[str] = Field(default_factory=list)
    chain_links: list[ChainLink] = Field(default_factory=list)
    problem_behavior: str | None = None
    prompting_event: str | None = None
    consequences: list[str] = Field(default_factory=list)
    solutions: list[str] = Field(default_factory=list)
    summary: str | None = None


class StoredChainAnalysis(ChainAnalysis):
    """A :class:`ChainAnalysis` as stored, with its session and timestamps."""

    model_config = ConfigDict(extra="ignore")

    session_id: UUID
    created_at: datetime
    updated_at: datetime
