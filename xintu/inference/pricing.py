"""What a remote call costs: token usage times the per-model price table."""

from __future__ import annotations

from decimal import Decimal

from xintu.config import ModelPrice
from xintu.inference import precheck

# Models of the classifiers that run on our own machine: the offline pipeline's names start
# with this prefix, and the screenshot pre-check. A cache hit on their answer saves no remote
# call (without the cache they would have answered again, for free).
LOCAL_MODEL_PREFIX = "local-"
PRECHECK_MODEL = precheck.MODEL_NAME


def is_free_model(model: str | None) -> bool:
    return model is not None and (model.startswith(LOCAL_MODEL_PREFIX) or model == PRECHECK_MODEL)


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
