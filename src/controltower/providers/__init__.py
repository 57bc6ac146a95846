"""Provider adapters behind the `ChatProvider` seam, and the fake that ships with them."""

from controltower.providers.base import (
    ChatCompletion,
    ChatProvider,
    ChatRequest,
    ChatStream,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResult,
    StreamSummary,
)

__all__ = [
    "ChatCompletion",
    "ChatProvider",
    "ChatRequest",
    "ChatStream",
    "EmbeddingProvider",
    "EmbeddingRequest",
    "EmbeddingResult",
    "StreamSummary",
]
