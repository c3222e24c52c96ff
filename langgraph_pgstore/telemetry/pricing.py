"""LLM call cost in USD with genai-prices (bundled price data, no network at run time).

Unknown model, unknown usage or a price lookup failure give ``None`` (stored as NULL), never 0:
"free" and "we don't know" must stay distinguishable in stats.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

__all__ = ["cost_usd"]


@lru_cache(maxsize=512)
def _known(model: str, provider: str | None) -> str | None:
    """Which provider id genai-prices accepts for this model: ``provider``, '' (auto) or None."""
    from genai_prices import Usage, calc_price

    for candidate in (provider, "") if provider else ("",):
        try:
            calc_price(Usage(input_tokens=1), model, provider_id=candidate or None)
        except LookupError:
            continue
        return candidate
    return None


@lru_cache(maxsize=16_384)
def cost_usd(
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
) -> Decimal | None:
    """Price of one call; ``input_tokens`` includes cached ones (LangChain's convention).

    A genai-prices lookup costs ~0.1-1 ms of the writer thread's CPU (and GIL); repeated
    (model, usage) combinations are served from a cache.
    """
    if not model or input_tokens is None or output_tokens is None:
        return None
    provider_id = _known(model, provider)
    if provider_id is None:
        return None
    from genai_prices import Usage, calc_price

    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens or None,
        cache_write_tokens=cache_write_tokens or None,
    )
    try:
        return calc_price(usage, model, provider_id=provider_id or None).total_price
    except (LookupError, ValueError):
        return None
