"""The order of classifiers: remote providers with circuit breakers, then the local pipeline."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from loguru import logger

from xintu.config import InferenceMode
from xintu.inference.base import Classifier, ClassifierError, Prediction, PreparedImage


class CircuitState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    """Skip a provider after ``threshold`` consecutive failures; after ``cooldown_s`` one
    trial call decides whether it closes again."""

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.closed
        if time.monotonic() - self.opened_at >= self.cooldown_s:
            return CircuitState.half_open
        return CircuitState.open

    def try_acquire(self) -> bool:
        """Whether a call may go through now; in half-open state only one trial at a time."""
        state = self.state
        if state is CircuitState.closed:
            return True
        if state is CircuitState.half_open and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self.failures += 1
        if self._trial_in_flight or self.failures >= self.threshold:
            self.opened_at = time.monotonic()
        self._trial_in_flight = False


@dataclass(slots=True)
class ProviderSlot:
    classifier: Classifier
    breaker: CircuitBreaker
    configured: bool


class NoClassifierAnswered(Exception):
    """Every classifier in the order failed or was unavailable."""


class HybridClassifier:
    """Tries remote providers in order (skipping open circuits), then local, per the mode."""

    def __init__(
        self,
        mode: InferenceMode,
        remote: list[ProviderSlot],
        local: Classifier | None,
    ) -> None:
        self.mode = mode
        self.remote = remote
        self.local = local
        # Failed remote calls per provider since start, for /metrics.
        self.provider_failures: Counter[str] = Counter()

    def _remote_order(self, allow_remote: bool) -> list[ProviderSlot]:
        if self.mode is InferenceMode.local_only or not allow_remote:
            return []
        return [slot for slot in self.remote if slot.configured]

    @property
    def offers_remote(self) -> bool:
        """Whether a remote provider would be tried at all (mode and API keys)."""
        return bool(self._remote_order(True))

    @property
    def can_classify(self) -> bool:
        """Whether any classifier is configured for the mode (not whether it is healthy)."""
        return bool(self._remote_order(True)) or (
            self.local is not None and self.mode is not InferenceMode.remote_only
        )

    async def classify(self, image: PreparedImage, *, allow_remote: bool = True) -> Prediction:
        """The first usable answer; ``allow_remote=False`` (no credits) goes straight to local."""
        errors: list[str] = []
        for slot in self._remote_order(allow_remote):
            if not slot.breaker.try_acquire():
                errors.append(f"{slot.classifier.name}: circuit open")
                continue
            try:
                prediction = await slot.classifier.classify(image)
            except ClassifierError as exc:
                slot.breaker.record_failure()
                self.provider_failures[slot.classifier.name] += 1
                logger.warning("provider {} failed: {}", slot.classifier.name, exc)
                errors.append(str(exc))
                continue
            except BaseException:
                # Cancelled or an unexpected bug: the trial slot must not stay taken.
                slot.breaker.record_failure()
                raise
            slot.breaker.record_success()
            return prediction
        if self.local is not None and self.mode is not InferenceMode.remote_only:
            try:
                return await self.local.classify(image)
            except ClassifierError as exc:
                logger.warning("local classifier failed: {}", exc)
                errors.append(f"local: {exc}")
        raise NoClassifierAnswered("; ".join(errors) or "no classifier is configured")
