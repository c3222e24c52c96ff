"""A fake chat model reporting usage like a real provider (for telemetry tests and bench)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


class UsageChatModel(BaseChatModel):
    """Answers ``reply`` with ``usage_metadata``; streams it word by word (usage on last chunk)."""

    model: str = "gpt-4o-mini"
    reply: str = "hello there"
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read: int = 0
    reasoning: int = 0
    with_usage: bool = True
    delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "usage-fake"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        params["ls_model_name"] = self.model
        return params

    def _usage(self) -> dict[str, Any] | None:
        if not self.with_usage:
            return None
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.cache_read:
            usage["input_token_details"] = {"cache_read": self.cache_read}
        if self.reasoning:
            usage["output_token_details"] = {"reasoning": self.reasoning}
        return usage

    def _meta(self) -> dict[str, Any]:
        return {"model_name": self.model, "finish_reason": "stop", "id": "resp-1"}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay:
            time.sleep(self.delay)
        msg = AIMessage(self.reply, usage_metadata=self._usage(), response_metadata=self._meta())
        return ChatResult(generations=[ChatGeneration(message=msg)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        msg = AIMessage(self.reply, usage_metadata=self._usage(), response_metadata=self._meta())
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _chunks(self) -> list[AIMessageChunk]:
        words = self.reply.split(" ")
        chunks = [
            AIMessageChunk(content=w + (" " if i < len(words) - 1 else ""))
            for i, w in enumerate(words)
        ]
        chunks[-1] = AIMessageChunk(
            content=chunks[-1].content,
            usage_metadata=self._usage(),  # type: ignore[arg-type]
            response_metadata=self._meta(),
        )
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            if self.delay:
                time.sleep(self.delay)
            gen = ChatGenerationChunk(message=chunk)
            if run_manager:
                run_manager.on_llm_new_token(str(chunk.content), chunk=gen)
            yield gen

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            if self.delay:
                await asyncio.sleep(self.delay)
            gen = ChatGenerationChunk(message=chunk)
            if run_manager:
                await run_manager.on_llm_new_token(str(chunk.content), chunk=gen)
            yield gen
