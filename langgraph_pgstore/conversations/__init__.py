"""Conversation data (users, sessions, messages, chain analyses), mirrored from the graph."""

from .models import (
    ChainAnalysis,
    ChainLink,
    Message,
    MessageHit,
    Session,
    SessionStats,
    StoredChainAnalysis,
    User,
)
from .recorder import MessageRecorder
from .repository import AsyncConversations, Conversations

__all__ = [
    "AsyncConversations",
    "ChainAnalysis",
    "ChainLink",
    "Conversations",
    "Message",
    "MessageHit",
    "MessageRecorder",
    "Session",
    "SessionStats",
    "StoredChainAnalysis",
    "User",
]
