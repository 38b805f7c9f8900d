"""The global classification cache: in-process layer → Redis → database.

The database is the truth. Redis (when configured) is a shared hot layer; each process
also keeps a bounded in-process layer, invalidated through Redis pub/sub when entries
change elsewhere (without Redis there is one process and invalidation is direct). The
hot path never touches the ORM: these are Core statements on pooled connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from typing import Any, cast

import orjson
from cachetools import TTLCache
from loguru import logger
from redis.asyncio import Redis
from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from xintu.db import insert_ignoring_duplicates, is_sqlite, upsert
from xintu.inference.base import Prediction
from xintu.models import ImageCacheClaim, ImageClassificationCache
from xintu.models.base import utcnow

_ENTRIES = cast(Table, ImageClassificationCache.__table__)
_CLAIMS = cast(Table, ImageCacheClaim.__table__)
_REDIS_PREFIX = "xintu:cache:"
INVALIDATION_CHANNEL = "xintu:cache:invalidate"
_INVALIDATE_ALL = "*"
_DB_CHUNK = 500
_WRITE_ATTEMPTS = 4
# MySQL deadlock / lock wait timeout, PostgreSQL serialization failure / deadlock.
_RETRYABLE_CODES = ("1213", "1205", "40001", "40P01")


@dataclass(frozen=True, slots=True)
class CacheEntry:
    image_hash: str
    category: str
    confidence: float
    description: str
    model: str
    inference_method: str
    size_bytes: int | None
    shared: bool
    # Until shared, the uploaders who may see it (they got this category themselves).
    uploaders: frozenset[str]

    def visible_to(self, uploader: str) -> bool:
        return self.shared or uploader in self.uploaders

    def dumps(self) -> bytes:
        payload = asdict(self)
        payload["uploaders"] = sorted(self.uploaders)
        return orjson.dumps(payload)

    @classmethod
    def loads(cls, raw: bytes) -> CacheEntry:
        payload = orjson.loads(raw)
        payload["uploaders"] = frozenset(payload["uploaders"])
        return cls(**payload)


class ClassificationCache:
    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis | None,
        *,
        quorum: int,
        memory_entries: int,
        memory_ttl_s: float,
        redis_ttl_s: int,
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._quorum = quorum
        self._redis_ttl_s = redis_ttl_s
        self._memory: TTLCache[str, CacheEntry] = TTLCache(memory_entries, memory_ttl_s)
        self._listener: asyncio.Task[None] | None = None
        # Striped: a bounded set of locks, the same one for the same hash.
        self._hash_locks = [asyncio.Lock() for _ in range(64)]
        # SQLite has one writer at a time and its busy handler sleeps up to 100 ms between
        # retries; queueing our writes in-process is far faster than contending for it.
        self._write_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if is_sqlite(str(engine.url)) else contextlib.nullcontext()
        )

    # -- reading ---------------------------------------------------------------------------

    async def get(self, image_hash: str) -> CacheEntry | None:
        entry = self._memory.get(image_hash)
        if entry is not None:
            return entry
        return (await self.get_many([image_hash])).get(image_hash)

    async def get_many(self, hashes: list[str]) -> dict[str, CacheEntry]:
        """Entries for the hashes that have one, whoever may see them."""
        found: dict[str, CacheEntry] = {}
        missing: list[str] = []
        for image_hash in dict.fromkeys(hashes):
            entry = self._memory.get(image_hash)
            if entry is None:
                missing.append(image_hash)
            else:
                found[image_hash] = entry
        if missing and self._redis is not None:
            raw_values = await self._redis.mget([_REDIS_PREFIX + h for h in missing])
            still_missing = []
            for image_hash, raw in zip(missing, raw_values, strict=True):
                if raw is None:
                    still_missing.append(image_hash)
                else:
                    entry = CacheEntry.loads(cast(bytes, raw))
                    found[image_hash] = self._memory[image_hash] = entry
            missing = still_missing
        if missing:
            from_db = await self._load_from_db(missing)
            found.update(from_db)
            for entry in from_db.values():
                self._memory[entry.image_hash] = entry
            if from_db and self._redis is not None:
                await self._store_in_redis(list(from_db.values()))
        return found

    async def _load_from_db(self, hashes: list[str]) -> dict[str, CacheEntry]:
        entries: dict[str, CacheEntry] = {}
        async with self._engine.connect() as connection:
            for start in range(0, len(hashes), _DB_CHUNK):
                chunk = hashes[start : start + _DB_CHUNK]
                rows = (
                    await connection.execute(
                        select(_ENTRIES).where(_ENTRIES.c.image_hash.in_(chunk))
                    )
                ).mappings()
                unshared: dict[str, Any] = {}
                for row in rows:
                    if row["shared"]:
                        entries[row["image_hash"]] = _entry(row, frozenset())
                    else:
                        unshared[row["image_hash"]] = row
                if unshared:
                    uploaders = await _uploaders_by_hash(connection, unshared)
                    for image_hash, row in unshared.items():
                        entries[image_hash] = _entry(row, uploaders.get(image_hash, frozenset()))
        return entries

    # -- writing ---------------------------------------------------------------------------

    async def record(
        self,
        image_hash: str,
        prediction: Prediction,
        *,
        uploader: str,
        server_verified: bool,
        size_bytes: int | None,
    ) -> CacheEntry:
        """Store a fresh answer; share it when the rule of DESIGN §4.1 allows.

        ``server_verified``: the server hashed the classified bytes itself and got
        ``image_hash``, so the entry cannot be a planted answer and is shared at once.
        Otherwise the uploader's claim is recorded and the entry is shared when
        ``quorum`` distinct uploaders got the same category under this hash.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "category": prediction.category.value,
            "confidence": prediction.confidence,
            "description": prediction.description,
            "model": prediction.model,
            "inference_method": prediction.inference_method,
            "size_bytes": size_bytes,
            "updated_at": now,
        }
        # Writes for one hash queue up in this process; across processes a deadlock or
        # serialization failure (MySQL gap locks on a fresh key) is retried.
        async with self._hash_locks[int(image_hash[:8], 16) % len(self._hash_locks)]:
            for attempt in range(_WRITE_ATTEMPTS):
                try:
                    async with self._write_lock, self._engine.begin() as connection:
                        if server_verified:
                            entry = await self._record_verified(connection, image_hash, values)
                        else:
                            entry = await self._record_claim(
                                connection, image_hash, values, uploader
                            )
                    break
                except DBAPIError as exc:
                    if attempt + 1 == _WRITE_ATTEMPTS or not _is_retryable(exc):
                        raise
                    await asyncio.sleep(0.01 * 2**attempt)
        await self._publish([entry])
        return entry

    async def _record_verified(
        self, connection: AsyncConnection, image_hash: str, values: dict[str, Any]
    ) -> CacheEntry:
        values = {**values, "shared": True}
        dialect = connection.dialect.name
        if dialect in ("sqlite", "postgresql"):
            # One statement on the hot path: insert, or replace an unshared (claimed) entry
            # — the server's own hash settles it — and keep an already shared one.
            insert_factory = postgresql_insert if dialect == "postgresql" else sqlite_insert
            statement = insert_factory(_ENTRIES).values(**_new_row(image_hash, values))
            written = (
                (
                    await connection.execute(
                        statement.on_conflict_do_update(
                            index_elements=["image_hash"],
                            set_=values,
                            where=_ENTRIES.c.shared.is_(False),
                        ).returning(*_ENTRIES.c)
                    )
                )
                .mappings()
                .first()
            )
            if written is not None:
                return _entry(written, frozenset())
        else:
            replaced = await connection.execute(
                update(_ENTRIES)
                .where(_ENTRIES.c.image_hash == image_hash, _ENTRIES.c.shared.is_(False))
                .values(**values)
            )
            if replaced.rowcount == 0:
                await connection.execute(
                    insert_ignoring_duplicates(
                        dialect, _ENTRIES, _new_row(image_hash, values), ["image_hash"]
                    )
                )
        row = await _select_entry(connection, image_hash)
        return _entry(row, frozenset())

    async def _record_claim(
        self,
        connection: AsyncConnection,
        image_hash: str,
        values: dict[str, Any],
        uploader: str,
    ) -> CacheEntry:
        category = values["category"]
        await connection.execute(
            upsert(
                connection.dialect.name,
                _CLAIMS,
                {
                    "image_hash": image_hash,
                    "uploader": uploader,
                    "category": category,
                    "created_at": values["updated_at"],
                },
                ["image_hash", "uploader"],
                ["category"],
            )
        )
        claims = (
            await connection.execute(
                select(_CLAIMS.c.uploader, _CLAIMS.c.category).where(
                    _CLAIMS.c.image_hash == image_hash
                )
            )
        ).all()
        agreeing = sum(1 for _, claimed in claims if claimed == category)
        shared = agreeing >= self._quorum
        existing = await _select_entry(connection, image_hash, required=False)
        if existing is None:
            await connection.execute(
                insert_ignoring_duplicates(
                    connection.dialect.name,
                    _ENTRIES,
                    _new_row(image_hash, {**values, "shared": shared}),
                    ["image_hash"],
                )
            )
        elif shared and not existing["shared"]:
            # The quorum settles it: everyone gets this answer from now on.
            await connection.execute(
                update(_ENTRIES)
                .where(_ENTRIES.c.image_hash == image_hash)
                .values(**values, shared=True)
            )
        row = await _select_entry(connection, image_hash)
        uploaders: frozenset[str] = frozenset()
        if not row["shared"]:
            uploaders = frozenset(name for name, claimed in claims if claimed == row["category"])
        return _entry(row, uploaders)

    async def purge_model(self, model: str) -> int:
        """Delete every entry produced by ``model`` (and its claims); returns how many."""
        async with self._engine.begin() as connection:
            hashes = list(
                (
                    await connection.execute(
                        select(_ENTRIES.c.image_hash).where(_ENTRIES.c.model == model)
                    )
                ).scalars()
            )
            for start in range(0, len(hashes), _DB_CHUNK):
                chunk = hashes[start : start + _DB_CHUNK]
                await connection.execute(delete(_CLAIMS).where(_CLAIMS.c.image_hash.in_(chunk)))
                await connection.execute(delete(_ENTRIES).where(_ENTRIES.c.image_hash.in_(chunk)))
        self._memory.clear()
        if self._redis is not None and hashes:
            keys = [_REDIS_PREFIX + image_hash for image_hash in hashes]
            for start in range(0, len(keys), _DB_CHUNK):
                await self._redis.delete(*keys[start : start + _DB_CHUNK])
            await self._redis.publish(INVALIDATION_CHANNEL, _INVALIDATE_ALL)
        return len(hashes)

    async def _publish(self, entries: list[CacheEntry]) -> None:
        for entry in entries:
            self._memory[entry.image_hash] = entry
        if self._redis is None:
            return
        await self._store_in_redis(entries)
        for entry in entries:
            await self._redis.publish(INVALIDATION_CHANNEL, entry.image_hash)

    async def _store_in_redis(self, entries: list[CacheEntry]) -> None:
        assert self._redis is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.set(_REDIS_PREFIX + entry.image_hash, entry.dumps(), ex=self._redis_ttl_s)
            await pipe.execute()

    # -- cross-process invalidation -------------------------------------------------------

    async def start(self) -> None:
        if self._redis is not None:
            self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(INVALIDATION_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        key = message["data"].decode()
                        if key == _INVALIDATE_ALL:
                            self._memory.clear()
                        else:
                            self._memory.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis restarts must not kill the listener
                logger.warning("cache invalidation listener: {}; reconnecting", exc)
                # Anything could have changed while we were deaf.
                self._memory.clear()
                await asyncio.sleep(1.0)


def _is_retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig)
    return any(code in text for code in _RETRYABLE_CODES) or "deadlock" in text.lower()


def _new_row(image_hash: str, values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "image_hash": image_hash, "hit_count": 0, "created_at": values["updated_at"]}


async def _select_entry(
    connection: AsyncConnection, image_hash: str, *, required: bool = True
) -> Any:
    result = await connection.execute(select(_ENTRIES).where(_ENTRIES.c.image_hash == image_hash))
    row = result.mappings().first()
    if row is None and required:
        raise LookupError(f"no cache entry for {image_hash}")
    return row


def _entry(row: Any, uploaders: frozenset[str]) -> CacheEntry:
    return CacheEntry(
        image_hash=row["image_hash"],
        category=row["category"],
        confidence=row["confidence"],
        description=row["description"],
        model=row["model"],
        inference_method=row["inference_method"],
        size_bytes=row["size_bytes"],
        shared=bool(row["shared"]),
        uploaders=uploaders,
    )


async def _uploaders_by_hash(
    connection: AsyncConnection, rows: dict[str, Any]
) -> dict[str, frozenset[str]]:
    """Uploaders whose claim agrees with each unshared entry's category."""
    result = await connection.execute(
        select(_CLAIMS.c.image_hash, _CLAIMS.c.uploader, _CLAIMS.c.category).where(
            _CLAIMS.c.image_hash.in_(list(rows))
        )
    )
    uploaders: dict[str, set[str]] = {}
    for image_hash, uploader, category in result:
        if rows[image_hash]["category"] == category:
            uploaders.setdefault(image_hash, set()).add(uploader)
    return {image_hash: frozenset(names) for image_hash, names in uploaders.items()}
