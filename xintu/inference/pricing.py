"""What a remote call costs: token usage times the per-model price table."""

from __future__ import annotations

from decimal import Decimal

from xintu.config import ModelPrice

_PER = Decimal(1000)
_QUANTUM = Decimal("0.000001")


def call_cost(
    prices: dict[str, ModelPrice], model: str | None, input_tokens: int, output_tokens: int
) -> Decimal:
    """CNY for one call; zero for models without a price (local, unknown)."""
    price = prices.get(model or "")
    if price is None:
        return Decimal(0)
    cost = (
        Decimal(input_tokens) * Decimal(str(price.input))
        + Decimal(output_tokens) * Decimal(str(price.output))
    ) / _PER
    return cost.quantize(_QUANTUM)
