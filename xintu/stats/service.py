"""Statistics of DESIGN §4.2, computed by SQL aggregation over ``request_log``.

Counting rules (docs/STATS.md):
- a request is one request_log row: one served or failed classification. A check-cache
  miss writes no row, so a miss followed by its upload counts once;
- a cache hit is a row with ``from_cache`` true; remote and local calls are rows whose
  ``inference_method`` is ``remote`` or ``local``; a failed request has status >= 400;
- days are calendar days in ``XINTU_TIMEZONE``. Timestamps are stored as naive UTC, so the
  UTC instants where local days begin are computed here (DST-exact through zoneinfo) and
  rows are bucketed with a CASE over those instants: the same SQL on every database;
- percentiles are nearest-rank (the smallest value with at least p % of the rows at or
  below it), computed with ROW_NUMBER() so that they are exact on SQLite, MariaDB/MySQL and
  PostgreSQL alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from xintu.categories import CATEGORY_NAMES, Category
from xintu.config import Settings
from xintu.inference.pricing import LOCAL_MODEL_PREFIX, PRECHECK_MODEL, is_free_model
from xintu.models import RequestLog, WechatUser

CURRENCY = "CNY"
CHECK_CACHE_ENDPOINTS = ("check-cache", "batch-check-cache")
METHODS = ("cache", "remote", "local")
# Requests that ended before any classifier answered have no inference_method.
NO_METHOD = "none"

_log = RequestLog


@dataclass(frozen=True, slots=True)
class DayWindow:
    """Local calendar days ``days[0] … days[-1]`` and the UTC instants where each begins;
    ``bounds`` has one more element: the end of the last day."""

    days: list[date]
    bounds: list[datetime]

    @property
    def start(self) -> datetime:
        return self.bounds[0]

    @property
    def end(self) -> datetime:
        return self.bounds[-1]


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``zone``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def day_window(days: int, zone: ZoneInfo, now: datetime) -> DayWindow:
    """The last ``days`` local days, today included."""
    today = now.astimezone(zone).date()
    local_days = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    bounds = [local_midnight_utc(day, zone) for day in local_days]
    bounds.append(local_midnight_utc(today + timedelta(days=1), zone))
    return DayWindow(local_days, bounds)


def day_bucket(window: DayWindow) -> ColumnElement[int]:
    """The index of the local day a row belongs to (rows must lie inside the window).

    A balanced tree of CASEs over the day boundaries: log2(days) comparisons per row
    instead of up to ``days``, exact whatever the zone's offsets and DST changes.
    """
    return _bucket_between(window.bounds, 0, len(window.days))


def _bucket_between(bounds: list[datetime], low: int, high: int) -> ColumnElement[int]:
    """The bucket for rows known to lie in days ``low`` … ``high - 1``."""
    if high - low == 1:
        return literal(low)
    middle = (low + high) // 2
    return case(
        (_log.created_at < bounds[middle], _bucket_between(bounds, low, middle)),
        else_=_bucket_between(bounds, middle, high),
    )


def in_window(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(_log.created_at >= start, _log.created_at < end)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_is_hit = _log.from_cache.is_(True)
_is_remote = _log.inference_method == "remote"
_is_local = _log.inference_method == "local"
# Every from_cache row has inference_method "cache"; the costs queries filter on the method
# so that they seek the (inference_method, created_at, …) index.
_is_cache_method = _log.inference_method == "cache"
_is_failed = _log.status_code >= 400
_is_served = _log.status_code < 400
_is_check_hit = and_(_is_hit, _log.endpoint.in_(CHECK_CACHE_ENDPOINTS))
# A hit that spared a remote call: not one on an answer of a free, on-server classifier
# (the same rule as ``is_free_model``). Counted through the method index, which holds model.
_is_paid_hit = and_(
    _is_cache_method,
    _log.model.is_not(None),
    _log.model != literal_column(f"'{PRECHECK_MODEL}'", String),
    _log.model.not_like(literal_column(f"'{LOCAL_MODEL_PREFIX}%'", String)),
)
# Who made a request: the account, else the IP address (client labels are in client_label).
# Constants are SQL literals, not bind parameters: PostgreSQL only matches a SELECT
# expression to its GROUP BY twin when both are textually identical.
_caller_key = func.coalesce(_log.user_id, literal_column("'ip:'", String) + _log.ip_address)


def _hash_for_distinct(session: AsyncSession) -> ColumnElement[Any]:
    """MariaDB/MySQL compare CHAR(64) utf8mb4 through its collation; the hex hash compares
    the same as bytes, twice as fast. PostgreSQL's deterministic collations also decide
    equality byte by byte, so the "C" collation gives the same groups, ~15 % faster."""
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        return cast(_log.image_hash, LargeBinary)
    if dialect == "postgresql":
        return _log.image_hash.collate("C")
    return _log.image_hash.expression


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _money(value: Decimal | float | None) -> float:
    return round(float(value or 0), 6)


def _ms(value: float | None) -> float:
    return round(float(value or 0), 2)


def _mean_remote_cost(remote_cost: Decimal | float | None, remote_calls: int) -> float:
    return float(remote_cost or 0) / remote_calls if remote_calls else 0.0


async def _paid_hits(session: AsyncSession, where: ColumnElement[bool]) -> int:
    """Cache hits in ``where`` that spared a remote call; a seek of the method index (the
    other statistics' covering index has no model column)."""
    count = await session.scalar(select(func.count()).where(where, _is_paid_hit))
    return int(count or 0)


def _savings_rate(cost: float, saved: float) -> float:
    """The share of the LLM bill without the cache that the cache saved."""
    return _ratio(saved, cost + saved)


async def percentiles(
    session: AsyncSession,
    where: ColumnElement[bool],
    group: ColumnElement[Any] | None,
    points: tuple[int, ...],
) -> dict[Any, dict[int, float]]:
    """Nearest-rank percentiles of ``processing_time_ms`` per group (key None without one).

    The rank of percentile p among n values is ceil(p·n/100); the filter
    ``rn·100 >= p·n > (rn-1)·100`` selects exactly that row with integer arithmetic only,
    so every database agrees.
    """
    partition = [group] if group is not None else None
    group_column = (group if group is not None else literal(None)).label("grp")
    ranked = (
        select(
            group_column,
            _log.processing_time_ms.label("ms"),
            func.row_number()
            .over(partition_by=partition, order_by=_log.processing_time_ms)
            .label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(where)
        .subquery()
    )
    wanted = or_(
        *(
            and_(
                ranked.c.rn * 100 >= point * ranked.c.n,
                (ranked.c.rn - 1) * 100 < point * ranked.c.n,
            )
            for point in points
        )
    )
    rows = (
        await session.execute(
            select(ranked.c.grp, ranked.c.rn, ranked.c.n, ranked.c.ms).where(wanted)
        )
    ).all()
    result: dict[Any, dict[int, float]] = {}
    for grp, rank, count, value in rows:
        for point in points:
            if rank == math.ceil(point * count / 100):
                result.setdefault(grp, {})[point] = _ms(value)
    return result


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


async def today(
    session: AsyncSession, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """Today's totals in ``XINTU_TIMEZONE``."""
    window = day_window(1, ZoneInfo(settings.timezone), _now(now))
    where = in_window(window.start, window.end)
    row = (
        await session.execute(
            select(
                func.count().label("total"),
                _count_if(_is_hit).label("hits"),
                _count_if(_is_remote).label("remote"),
                _count_if(_is_local).label("local"),
                _count_if(_is_failed).label("failed"),
                func.count(func.distinct(_caller_key)).label("users"),
                func.avg(case((_is_served, _log.processing_time_ms))).label("avg_ms"),
                func.sum(_log.cost).label("cost"),
                func.sum(case((_is_remote, _log.cost))).label("remote_cost"),
            ).where(where)
        )
    ).one()
    p95 = await percentiles(session, and_(where, _is_served), None, (95,))
    mean_cost = _mean_remote_cost(row.remote_cost, int(row.remote))
    total, hits = int(row.total), int(row.hits)
    return {
        "date": window.days[0].isoformat(),
        "total_requests": total,
        "cache_hits": hits,
        "cache_hit_rate": _ratio(hits, total),
        "remote_calls": int(row.remote),
        "local_calls": int(row.local),
        "failed_requests": int(row.failed),
        "unique_users": int(row.users),
        "avg_processing_ms": _ms(row.avg_ms),
        "p95_processing_ms": p95.get(None, {}).get(95, 0.0),
        "cost": _money(row.cost),
        "cost_saved": _money(await _paid_hits(session, where) * mean_cost),
        "currency": CURRENCY,
    }


async def cache_efficiency(
    session: AsyncSession, settings: Settings, days: int, now: datetime | None = None
) -> dict[str, Any]:
    """Hit rate, uploads and bandwidth avoided, per local day and in total."""
    window = day_window(days, ZoneInfo(settings.timezone), _now(now))
    bucket = day_bucket(window).label("bucket")
    rows = (
        await session.execute(
            select(
                bucket,
                func.count().label("total"),
                _count_if(_is_hit).label("hits"),
                _count_if(_is_check_hit).label("check_hits"),
                func.sum(case((_is_check_hit, _log.size_bytes))).label("check_bytes"),
                _count_if(_is_remote).label("remote"),
                func.sum(case((_is_remote, _log.cost))).label("remote_cost"),
            )
            .where(in_window(window.start, window.end))
            .group_by(bucket)
        )
    ).all()
    by_day = {int(row.bucket): row for row in rows}
    daily = []
    for index, day in enumerate(window.days):
        row = by_day.get(index)
        total, hits = (int(row.total), int(row.hits)) if row is not None else (0, 0)
        daily.append(
            {
                "date": day.isoformat(),
                "total_requests": total,
                "cache_hits": hits,
                "hit_rate": _ratio(hits, total),
            }
        )
    total = sum(int(row.total) for row in rows)
    hits = sum(int(row.hits) for row in rows)
    paid_hits = await _paid_hits(session, in_window(window.start, window.end))
    remote = sum(int(row.remote) for row in rows)
    remote_cost = sum(float(row.remote_cost or 0) for row in rows)
    saved = paid_hits * _mean_remote_cost(remote_cost, remote)
    return {
        "days": days,
        "total_requests": total,
        "cache_hits": hits,
        "hit_rate": _ratio(hits, total),
        "uploads_avoided": sum(int(row.check_hits) for row in rows),
        "bandwidth_saved_bytes": sum(int(row.check_bytes or 0) for row in rows),
        "remote_calls_avoided": paid_hits,
        "cost": _money(remote_cost),
        "cost_saved": _money(saved),
        "savings_rate": _savings_rate(remote_cost, saved),
        "currency": CURRENCY,
        "daily": daily,
    }


async def category_distribution(
    session: AsyncSession, settings: Settings, days: int, now: datetime | None = None
) -> dict[str, Any]:
    """Classifications served per category (all eight, always) and their distinct images."""
    window = day_window(days, ZoneInfo(settings.timezone), _now(now))
    rows = (
        await session.execute(
            select(
                _log.category,
                func.count().label("served"),
                func.count(func.distinct(_hash_for_distinct(session))).label("images"),
            )
            # IN (the eight) rather than IS NOT NULL: the (category, created_at, …) index
            # is then read as eight created_at ranges instead of every day it holds.
            .where(
                in_window(window.start, window.end),
                _is_served,
                _log.category.in_([category.value for category in Category]),
            )
            .group_by(_log.category)
        )
    ).all()
    counts = {row.category: (int(row.served), int(row.images)) for row in rows}
    total = sum(count for count, _ in counts.values())
    return {
        "days": days,
        "total": total,
        "categories": [
            {
                "category": category.value,
                "category_name": CATEGORY_NAMES[category],
                "count": counts.get(category.value, (0, 0))[0],
                "images": counts.get(category.value, (0, 0))[1],
                "ratio": _ratio(counts.get(category.value, (0, 0))[0], total),
            }
            for category in Category
        ],
    }


@dataclass(slots=True)
class _Caller:
    requests: int = 0
    hits: int = 0
    remote: int = 0
    last_active: datetime | None = None


def _as_utc(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):  # SQLite returns MAX() of a DATETIME as text
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def _fold(key: str | None) -> str | None:
    return None if key is None else key.rstrip(" ").casefold()


def _caller_order(item: tuple[str | None, int]) -> tuple[int, bool, str]:
    key, requests = item
    return (-requests, key is None, key or "")


async def top_users(
    session: AsyncSession, settings: Settings, days: int, limit: int, now: datetime | None = None
) -> dict[str, Any]:
    """The callers with the most requests: accounts, else IP addresses (never labels).

    Two steps, both through the ``(user_id, created_at, …)`` index: the request count of
    every caller (one plain COUNT per user_id, and per IP address of the rows without one),
    then hits, remote calls and last activity of the ``limit`` callers returned only.
    Ties are broken by the caller key in code-point order.
    """
    zone = ZoneInfo(settings.timezone)
    window = day_window(days, zone, _now(now))
    where = in_window(window.start, window.end)
    counts: dict[str | None, int] = {}
    # Without "user_id IS NOT NULL" the databases read the window's range of the
    # (created_at, …) index, whose pages the other statistics read too, rather than the
    # whole (user_id, …) index (docs/STATS.md); the NULL group is counted by IP below.
    by_user = await session.execute(
        select(_log.user_id, func.count()).where(where).group_by(_log.user_id)
    )
    for user_id, requests in by_user.all():
        if user_id is not None:
            counts[user_id] = int(requests)
    by_ip = await session.execute(
        select(_log.ip_address, func.count())
        .where(where, _log.user_id.is_(None))
        .group_by(_log.ip_address)
    )
    for ip_address, requests in by_ip.all():
        # The same key as COALESCE(user_id, 'ip:' || ip_address).
        key = None if ip_address is None else f"ip:{ip_address}"
        counts[key] = counts.get(key, 0) + int(requests)
    chosen = sorted(counts.items(), key=_caller_order)[:limit]

    callers = {key: _Caller(requests) for key, requests in chosen}
    detail_columns = (
        func.count().label("requests"),
        _count_if(_is_hit).label("hits"),
        _count_if(_is_remote).label("remote"),
        func.max(_log.created_at).label("last_active"),
    )
    user_keys = [key for key in callers if key is not None]
    ip_keys = [key[3:] for key in user_keys if key.startswith("ip:")]
    parts: list[tuple[bool, Any]] = []
    if user_keys:
        parts.append(
            (
                False,
                select(_log.user_id.label("caller"), *detail_columns)
                .where(where, _log.user_id.in_(user_keys))
                .group_by(_log.user_id),
            )
        )
    if ip_keys or None in callers:
        ip_match = [_log.ip_address.in_(ip_keys)] if ip_keys else []
        if None in callers:
            ip_match.append(_log.ip_address.is_(None))
        parts.append(
            (
                True,
                select(_log.ip_address.label("caller"), *detail_columns)
                .where(where, _log.user_id.is_(None), or_(*ip_match))
                .group_by(_log.ip_address),
            )
        )
    # MariaDB/MySQL compare user_id through a case-insensitive, pad-space collation: the
    # group may come back spelt as another row had it.
    folded = {_fold(key): caller for key, caller in callers.items()}
    for anonymous, part in parts:
        for row in (await session.execute(part)).all():
            key = row.caller
            if anonymous and key is not None:
                key = f"ip:{key}"
            caller = callers.get(key) or folded.get(_fold(key))
            if caller is None:
                continue
            caller.hits += int(row.hits)
            caller.remote += int(row.remote)
            last_active = _as_utc(row.last_active)
            if last_active is not None and (
                caller.last_active is None or last_active > caller.last_active
            ):
                caller.last_active = last_active

    user_ids = [
        int(key[5:])
        for key in callers
        if key is not None and key.startswith("user:") and key[5:].isdigit()
    ]
    nicknames: dict[int, str] = {}
    if user_ids:
        found = await session.execute(
            select(WechatUser.id, WechatUser.nickname).where(WechatUser.id.in_(user_ids))
        )
        nicknames = {int(user_id): str(nickname) for user_id, nickname in found.all()}
    users = []
    for key, caller in callers.items():
        nickname = None
        if key is not None and key.startswith("user:") and key[5:].isdigit():
            nickname = nicknames.get(int(key[5:])) or None
        last = caller.last_active
        users.append(
            {
                "user_id": key,
                "nickname": nickname,
                "requests": caller.requests,
                "cache_hits": caller.hits,
                "remote_calls": caller.remote,
                "last_active": last.astimezone(zone).isoformat() if last else None,
            }
        )
    return {"days": days, "users": users}


@dataclass(slots=True)
class _ModelCalls:
    provider: str | None
    model: str | None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class _DayCosts:
    calls: int = 0
    cost: float = 0.0
    hits: int = 0


async def costs(
    session: AsyncSession, settings: Settings, days: int, now: datetime | None = None
) -> dict[str, Any]:
    """Remote calls, tokens and cost per provider and model, and the cost the cache avoided."""
    window = day_window(days, ZoneInfo(settings.timezone), _now(now))
    where = in_window(window.start, window.end)
    # Two seeks of the (inference_method, created_at, …) index: remote calls with their
    # tokens and cost, then cache hits, which only need counting (measured faster than one
    # pass grouping both, docs/STATS.md).
    bucket = day_bucket(window).label("bucket")
    remote_rows = (
        await session.execute(
            select(
                bucket,
                _log.provider,
                _log.model,
                func.count().label("calls"),
                func.coalesce(func.sum(_log.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(_log.output_tokens), 0).label("output_tokens"),
                func.sum(_log.cost).label("cost"),
            )
            .where(where, _is_remote)
            .group_by(bucket, _log.provider, _log.model)
        )
    ).all()
    hit_rows = (
        await session.execute(
            select(bucket, _log.model, func.count().label("hits"))
            .where(where, _is_cache_method)
            .group_by(bucket, _log.model)
        )
    ).all()
    by_model: dict[tuple[str | None, str | None], _ModelCalls] = {}
    hits_by_model: dict[str | None, int] = {}
    hits_by_day: dict[int, dict[str | None, int]] = {}
    daily_rows: dict[int, _DayCosts] = {}
    for hit_row in hit_rows:
        hits_by_model[hit_row.model] = hits_by_model.get(hit_row.model, 0) + int(hit_row.hits)
        day_hits = hits_by_day.setdefault(int(hit_row.bucket), {})
        day_hits[hit_row.model] = day_hits.get(hit_row.model, 0) + int(hit_row.hits)
        daily_rows.setdefault(int(hit_row.bucket), _DayCosts()).hits += int(hit_row.hits)
    for group in remote_rows:
        day_costs = daily_rows.setdefault(int(group.bucket), _DayCosts())
        entry = by_model.setdefault(
            (group.provider, group.model), _ModelCalls(group.provider, group.model)
        )
        entry.calls += int(group.calls)
        entry.input_tokens += int(group.input_tokens)
        entry.output_tokens += int(group.output_tokens)
        entry.cost += float(group.cost or 0)
        day_costs.calls += int(group.calls)
        day_costs.cost += float(group.cost or 0)
    calls = list(by_model.values())

    total_calls = sum(int(row.calls) for row in calls)
    total_cost = sum(float(row.cost or 0) for row in calls)
    total_hits = sum(hits_by_model.values())
    mean_cost = _mean_remote_cost(total_cost, total_calls)

    # Per model, the avoided cost uses that model's own mean call cost; the hits go to the
    # provider that made most of the model's calls.
    model_calls: dict[str | None, int] = {}
    model_cost: dict[str | None, float] = {}
    owner: dict[str | None, int] = {}
    for index, row in enumerate(calls):
        if row.model in owner and int(row.calls) <= int(calls[owner[row.model]].calls):
            owner_index = owner[row.model]
        else:
            owner_index = index
        owner[row.model] = owner_index
        model_calls[row.model] = model_calls.get(row.model, 0) + int(row.calls)
        model_cost[row.model] = model_cost.get(row.model, 0.0) + float(row.cost or 0)

    def paid(model: str | None) -> bool:
        return model is not None and not is_free_model(model)

    def saved(model: str | None, hits: int) -> float:
        """What ``hits`` answers of ``model`` would have cost without the cache: nothing
        for the free on-server classifiers, else the model's mean call cost (the window's
        mean over all models when it made no call in the window)."""
        if not paid(model):
            return 0.0
        if model_calls.get(model):
            return hits * model_cost[model] / model_calls[model]
        return hits * mean_cost

    def price(model: str | None) -> dict[str, float | None]:
        entry = settings.model_prices.get(model or "")
        return {
            "input_price_per_1k": entry.input if entry else None,
            "output_price_per_1k": entry.output if entry else None,
        }

    items: list[dict[str, Any]] = []
    for index, row in enumerate(calls):
        hits = hits_by_model.get(row.model, 0) if owner.get(row.model) == index else 0
        items.append(
            {
                "provider": row.provider,
                "model": row.model,
                "calls": int(row.calls),
                "input_tokens": int(row.input_tokens),
                "output_tokens": int(row.output_tokens),
                "cost": _money(row.cost),
                "cache_hits": hits,
                "cost_saved": _money(saved(row.model, hits)),
                **price(row.model),
            }
        )
    for model, hits in hits_by_model.items():
        if model not in owner:
            items.append(
                {
                    "provider": None,
                    "model": model,
                    "calls": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cost": 0.0,
                    "cache_hits": hits,
                    "cost_saved": _money(saved(model, hits)),
                    **price(model),
                }
            )
    items.sort(key=lambda item: (-item["cost"], -item["cache_hits"], str(item["model"])))

    daily = []
    for index, day in enumerate(window.days):
        day_row = daily_rows.get(index)
        day_hits = hits_by_day.get(index, {})
        daily.append(
            {
                "date": day.isoformat(),
                "calls": int(day_row.calls) if day_row is not None else 0,
                "cost": _money(day_row.cost if day_row is not None else 0),
                "cache_hits": int(day_row.hits) if day_row is not None else 0,
                "cost_saved": _money(sum(saved(m, hits) for m, hits in day_hits.items())),
            }
        )
    total_saved = sum(saved(model, hits) for model, hits in hits_by_model.items())
    return {
        "days": days,
        "currency": CURRENCY,
        "total_calls": total_calls,
        "total_cost": _money(total_cost),
        "cache_hits": total_hits,
        "remote_calls_avoided": sum(hits for model, hits in hits_by_model.items() if paid(model)),
        "cost_saved": _money(total_saved),
        "cost_without_cache": _money(total_cost + total_saved),
        "savings_rate": _savings_rate(total_cost, total_saved),
        "mean_call_cost": _money(mean_cost),
        "providers": items,
        "daily": daily,
    }


async def performance(
    session: AsyncSession, hours: int, now: datetime | None = None
) -> dict[str, Any]:
    """Per inference method over the last ``hours``: count, success rate, p50/p95/p99."""
    end = _now(now)
    start = end - timedelta(hours=hours)
    where = and_(_log.created_at >= start, _log.created_at <= end)
    method = func.coalesce(_log.inference_method, literal_column(f"'{NO_METHOD}'", String))
    rows = (
        await session.execute(
            select(
                method.label("method"),
                func.count().label("requests"),
                _count_if(_is_served).label("served"),
                func.avg(_log.processing_time_ms).label("avg_ms"),
            )
            .where(where)
            .group_by(method)
        )
    ).all()
    stats = {row.method: row for row in rows}
    points = await percentiles(session, where, method, (50, 95, 99))
    names = list(METHODS) + [name for name in stats if name not in METHODS]
    methods = []
    for name in names:
        row = stats.get(name)
        if row is None and name not in METHODS:
            continue
        count = int(row.requests) if row is not None else 0
        values = points.get(name, {})
        methods.append(
            {
                "inference_method": name,
                "count": count,
                "success_rate": _ratio(int(row.served), count) if row is not None else 0.0,
                "avg_ms": _ms(row.avg_ms) if row is not None else 0.0,
                "p50_ms": values.get(50, 0.0),
                "p95_ms": values.get(95, 0.0),
                "p99_ms": values.get(99, 0.0),
            }
        )
    total = sum(int(row.requests) for row in rows)
    served = sum(int(row.served) for row in rows)
    return {
        "hours": hours,
        "total": total,
        "success_rate": _ratio(served, total),
        "methods": methods,
    }
