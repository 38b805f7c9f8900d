"""The global classification cache: in-process layer → Redis → database.

The database is the truth. Redis (when configured) is a shared hot layer; each process
also keeps a bounded in-process layer, invalidated through Redis pub/sub when entries
change elsewhere (without Redis there is one process and invalidation is direct). The
hot path never touches the ORM: see ``repository.py``.

While Redis is down, lookups go to the database and writes skip Redis; the hashes written
meanwhile are deleted from Redis when it answers again, so it never serves an entry that
changed during the outage. While the database is down, lookups that reach it answer 503
``database_unavailable``, and an answer already paid for is returned and its cache write
queued until the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import orjson
from cachetools import TTLCache
from loguru import logger
from redis.asyncio import Redis

from xintu.classify import repository
from xintu.classify.repository import CacheEntry
from xintu.db import Database, retry_on_conflict
from xintu.errors import DatabaseUnavailable
from xintu.health.database import DatabaseState, is_database_busy, is_database_unavailable
from xintu.images.fingerprint import Fingerprint
from xintu.inference.base import Prediction
from xintu.models.base import utcnow
from xintu.redis_guard import RedisGuard, RedisUnavailable

_REDIS_PREFIX = "xintu:cache:"
INVALIDATION_CHANNEL = "xintu:cache:invalidate"
_INVALIDATE_ALL = "*"
_REDIS_CHUNK = 500
# Hashes written while Redis was down, to invalidate when it is back; beyond this many,
# everything is invalidated.
_MAX_STALE = 10_000
# Cache writes waiting for the database; beyond this many, new ones are dropped (the
# image would then be inferred again, nothing else is lost).
_MAX_PENDING = 10_000
_PENDING_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class _PendingWrite:
    image_hash: str
    values: dict[str, Any]
    uploader: str
    server_verified: bool


__all__ = ["INVALIDATION_CHANNEL", "CacheEntry", "ClassificationCache"]


class ClassificationCache:
    def __init__(
        self,
        database: Database,
        redis: RedisGuard | None,
        *,
        quorum: int,
        memory_entries: int,
        memory_ttl_s: float,
        redis_ttl_s: int,
        database_state: DatabaseState | None = None,
    ) -> None:
        self._database = database
        self.database_state = database_state or DatabaseState()
        self._pending: list[_PendingWrite] = []
        self._pending_task: asyncio.Task[None] | None = None
        self._redis = redis
        self._quorum = quorum
        self._redis_ttl_s = redis_ttl_s
        self._memory: TTLCache[str, CacheEntry] = TTLCache(memory_entries, memory_ttl_s)
        self._listener: asyncio.Task[None] | None = None
        # Striped: a bounded set of locks, the same one for the same hash.
        self._hash_locks = [asyncio.Lock() for _ in range(64)]
        self._stale_in_redis: set[str] = set()
        self._repair: asyncio.Task[None] | None = None
        if redis is not None:
            redis.on_recovery.append(self._schedule_repair)

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
            keys = [_REDIS_PREFIX + h for h in missing]
            try:
                raw_values = await self._redis.call(lambda redis: redis.mget(keys))
            except RedisUnavailable:
                raw_values = [None] * len(missing)
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
            if from_db:
                await self._store_in_redis(list(from_db.values()))
        return found

    async def _load_from_db(self, hashes: list[str]) -> dict[str, CacheEntry]:
        self.database_state.require()
        try:
            entries = await self._database.read(repository.load_entries, hashes)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            self.database_state.mark_failed(exc)
            raise DatabaseUnavailable() from exc
        self.database_state.mark_up()
        return entries

    # -- writing ---------------------------------------------------------------------------

    async def record(
        self,
        image_hash: str,
        answer: Prediction | CacheEntry,
        *,
        uploader: str,
        server_verified: bool,
        size_bytes: int | None,
        fingerprint: Fingerprint | None = None,
        video: dict[str, Any] | None = None,
    ) -> CacheEntry | None:
        """Store an answer: a fresh prediction, or an existing entry's answer confirmed by
        an upload of the same picture; share it when the rule of DESIGN §4.1 allows.

        ``server_verified``: the server hashed the classified bytes itself and got
        ``image_hash``, so the entry cannot be a planted answer and is shared at once.
        Otherwise the uploader's claim is a vote (``repository.record_claim``). ``video``:
        the duration and per-frame results of a whole-video answer. None when the database
        is unreachable: the write is queued and retried.
        """
        now = utcnow()
        values: dict[str, Any]
        if isinstance(answer, CacheEntry):
            values = answer.values() | {"size_bytes": size_bytes or answer.size_bytes}
        else:
            values = {
                "category": answer.category.value,
                "confidence": answer.confidence,
                "description": answer.description,
                "model": answer.model,
                "inference_method": answer.inference_method,
                "size_bytes": size_bytes,
                "video_details": orjson.dumps(video).decode() if video is not None else None,
            } | repository.fingerprint_columns(fingerprint)
        values["updated_at"] = now
        write = _PendingWrite(image_hash, values, uploader, server_verified)
        try:
            entry = await self._write(write)
        except Exception as exc:
            if is_database_unavailable(exc):
                self.database_state.mark_failed(exc)
            elif not is_database_busy(exc):
                raise
            # The answer is paid for: the caller gets it, the database gets it later.
            self._queue(write)
            return None
        await self._publish([entry])
        return entry

    async def _write(self, write: _PendingWrite) -> CacheEntry:
        # Writes for one hash queue up in this process; across processes a deadlock or
        # serialization failure (MySQL gap locks on a fresh key) is retried.
        async with self._hash_locks[int(write.image_hash[:8], 16) % len(self._hash_locks)]:
            if write.server_verified:
                operation = partial(
                    self._database.run, repository.record_verified, write.image_hash, write.values
                )
            else:
                operation = partial(
                    self._database.run,
                    repository.record_claim,
                    write.image_hash,
                    write.values,
                    write.uploader,
                    self._quorum,
                )
            return await retry_on_conflict(operation)

    def _queue(self, write: _PendingWrite) -> None:
        if len(self._pending) >= _MAX_PENDING:
            logger.error("cache write queue full; answer for {} not cached", write.image_hash)
            return
        self._pending.append(write)

    @property
    def pending_writes(self) -> int:
        """Cache writes waiting for the database to come back."""
        return len(self._pending)

    async def write_pending(self) -> None:
        """Write the queued answers, oldest first, until the database fails again."""
        while self._pending:
            write = self._pending[0]
            try:
                entry = await self._write(write)
            except Exception as exc:  # noqa: BLE001 - a bad row must not block the others
                if is_database_unavailable(exc) or is_database_busy(exc):
                    if is_database_unavailable(exc):
                        self.database_state.mark_failed(exc)
                    return
                logger.error("queued cache write for {} dropped: {!r}", write.image_hash, exc)
                self._pending.pop(0)
                continue
            self._pending.pop(0)
            self.database_state.mark_up()
            await self._publish([entry])

    async def _retry_pending(self) -> None:
        while True:
            await asyncio.sleep(_PENDING_RETRY_S)
            if self._pending:
                await self.write_pending()

    async def find_near_duplicate(self, fingerprint: Fingerprint) -> CacheEntry | None:
        """A shared entry of the same picture under another hash (index lookup)."""
        return await self._database.read(repository.find_near_duplicate, fingerprint)

    async def purge_model(self, model: str) -> int:
        """Delete every entry produced by ``model`` (and its claims); returns how many."""
        hashes = await self._database.run(repository.purge_model, model)
        self._memory.clear()
        if self._redis is not None and hashes:
            # An operator's command: a Redis failure is reported to them, not hidden.
            redis = self._redis.redis
            keys = [_REDIS_PREFIX + image_hash for image_hash in hashes]
            for start in range(0, len(keys), _REDIS_CHUNK):
                await redis.delete(*keys[start : start + _REDIS_CHUNK])
            await redis.publish(INVALIDATION_CHANNEL, _INVALIDATE_ALL)
        return len(hashes)

    async def _publish(self, entries: list[CacheEntry]) -> None:
        for entry in entries:
            self._memory[entry.image_hash] = entry
        if self._redis is None:
            return
        if not await self._store_in_redis(entries):
            return

        async def invalidate(redis: Redis) -> None:
            for entry in entries:
                await redis.publish(INVALIDATION_CHANNEL, entry.image_hash)

        try:
            await self._redis.call(invalidate)
        except RedisUnavailable:
            self._note_stale(entries)

    async def _store_in_redis(self, entries: list[CacheEntry]) -> bool:
        """Whether the entries reached Redis (no Redis counts as reached)."""
        if self._redis is None:
            return True

        async def store(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.set(_REDIS_PREFIX + entry.image_hash, entry.dumps(), ex=self._redis_ttl_s)
                await pipe.execute()

        try:
            await self._redis.call(store)
        except RedisUnavailable:
            self._note_stale(entries)
            return False
        return True

    def _note_stale(self, entries: list[CacheEntry]) -> None:
        self._stale_in_redis.update(entry.image_hash for entry in entries)
        if len(self._stale_in_redis) > _MAX_STALE:
            self._stale_in_redis = {_INVALIDATE_ALL}

    def _schedule_repair(self) -> None:
        if self._stale_in_redis and (self._repair is None or self._repair.done()):
            self._repair = asyncio.create_task(self._repair_redis())

    async def _repair_redis(self) -> None:
        """After an outage: drop from Redis what changed while it was down, and tell the
        other processes (their in-process layers may hold the old answers)."""
        assert self._redis is not None
        stale, self._stale_in_redis = self._stale_in_redis, set()
        redis = self._redis.redis
        try:
            if _INVALIDATE_ALL in stale:
                async for key in redis.scan_iter(match=_REDIS_PREFIX + "*", count=1000):
                    await redis.delete(key)
                await redis.publish(INVALIDATION_CHANNEL, _INVALIDATE_ALL)
                return
            keys = [_REDIS_PREFIX + image_hash for image_hash in stale]
            for start in range(0, len(keys), _REDIS_CHUNK):
                await redis.delete(*keys[start : start + _REDIS_CHUNK])
            for image_hash in stale:
                await redis.publish(INVALIDATION_CHANNEL, image_hash)
        except Exception as exc:  # noqa: BLE001 - failed again: keep the list for next time
            self._stale_in_redis |= stale
            self._redis.mark_failed(exc)

    # -- cross-process invalidation -------------------------------------------------------

    async def start(self) -> None:
        self._pending_task = asyncio.create_task(self._retry_pending())
        if self._redis is not None:
            self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        for task in (self._listener, self._repair, self._pending_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pending:
            await self.write_pending()
            if self._pending:
                logger.error("{} queued cache writes lost at shutdown", len(self._pending))

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.redis.pubsub() as pubsub:
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
