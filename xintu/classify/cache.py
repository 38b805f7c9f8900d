"""The global classification cache: in-process layer → Redis → database.

The database is the truth. Redis (when configured) is a shared hot layer; each process
also keeps a bounded in-process layer, invalidated through Redis pub/sub when entries
change elsewhere (without Redis there is one process and invalidation is direct). The
hot path never touches the ORM: see ``repository.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import Any, cast

from cachetools import TTLCache
from loguru import logger
from redis.asyncio import Redis

from xintu.classify import repository
from xintu.classify.repository import CacheEntry
from xintu.db import Database, retry_on_conflict
from xintu.images.fingerprint import Fingerprint
from xintu.inference.base import Prediction
from xintu.models.base import utcnow

_REDIS_PREFIX = "xintu:cache:"
INVALIDATION_CHANNEL = "xintu:cache:invalidate"
_INVALIDATE_ALL = "*"
_REDIS_CHUNK = 500

__all__ = ["INVALIDATION_CHANNEL", "CacheEntry", "ClassificationCache"]


class ClassificationCache:
    def __init__(
        self,
        database: Database,
        redis: Redis | None,
        *,
        quorum: int,
        memory_entries: int,
        memory_ttl_s: float,
        redis_ttl_s: int,
    ) -> None:
        self._database = database
        self._redis = redis
        self._quorum = quorum
        self._redis_ttl_s = redis_ttl_s
        self._memory: TTLCache[str, CacheEntry] = TTLCache(memory_entries, memory_ttl_s)
        self._listener: asyncio.Task[None] | None = None
        # Striped: a bounded set of locks, the same one for the same hash.
        self._hash_locks = [asyncio.Lock() for _ in range(64)]

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
        return await self._database.read(repository.load_entries, hashes)

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
    ) -> CacheEntry:
        """Store an answer: a fresh prediction, or an existing entry's answer confirmed by
        an upload of the same picture; share it when the rule of DESIGN §4.1 allows.

        ``server_verified``: the server hashed the classified bytes itself and got
        ``image_hash``, so the entry cannot be a planted answer and is shared at once.
        Otherwise the uploader's claim is a vote (``repository.record_claim``).
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
            } | repository.fingerprint_columns(fingerprint)
        values["updated_at"] = now
        # Writes for one hash queue up in this process; across processes a deadlock or
        # serialization failure (MySQL gap locks on a fresh key) is retried.
        async with self._hash_locks[int(image_hash[:8], 16) % len(self._hash_locks)]:
            if server_verified:
                entry = await retry_on_conflict(
                    partial(self._database.run, repository.record_verified, image_hash, values)
                )
            else:
                entry = await retry_on_conflict(
                    partial(
                        self._database.run,
                        repository.record_claim,
                        image_hash,
                        values,
                        uploader,
                        self._quorum,
                    )
                )
        await self._publish([entry])
        return entry

    async def find_near_duplicate(self, fingerprint: Fingerprint) -> CacheEntry | None:
        """A shared entry of the same picture under another hash (index lookup)."""
        return await self._database.read(repository.find_near_duplicate, fingerprint)

    async def purge_model(self, model: str) -> int:
        """Delete every entry produced by ``model`` (and its claims); returns how many."""
        hashes = await self._database.run(repository.purge_model, model)
        self._memory.clear()
        if self._redis is not None and hashes:
            keys = [_REDIS_PREFIX + image_hash for image_hash in hashes]
            for start in range(0, len(keys), _REDIS_CHUNK):
                await self._redis.delete(*keys[start : start + _REDIS_CHUNK])
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
