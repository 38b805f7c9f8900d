"""Cache entries and uploader claims in the database: plain synchronous Core statements.

Each function is one transaction's work on a ``Connection``; ``Database.run`` executes it
in a thread on SQLite and in the async driver's greenlet on MySQL and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from xintu.db import insert_ignoring_duplicates, upsert
from xintu.images.fingerprint import Fingerprint, from_signed, to_signed
from xintu.models import ImageCacheClaim, ImageClassificationCache

_ENTRIES = cast(Table, ImageClassificationCache.__table__)
_CLAIMS = cast(Table, ImageCacheClaim.__table__)
_CHUNK = 500
_BANDS = [_ENTRIES.c[f"phash_band{band}"] for band in range(4)]
# Candidates read per band in a near-duplicate lookup (a band value shared by more entries
# than this is too common to tell pictures apart).
_NEAR_CANDIDATES_PER_BAND = 64


def fingerprint_columns(fingerprint: Fingerprint | None) -> dict[str, Any]:
    """The cache columns of a fingerprint (all NULL without one)."""
    if fingerprint is None:
        return {"phash": None, "thumb": None} | {band.name: None for band in _BANDS}
    return {"phash": to_signed(fingerprint.phash), "thumb": fingerprint.thumb} | {
        band.name: value for band, value in zip(_BANDS, fingerprint.bands, strict=True)
    }


def find_near_duplicate(connection: Connection, fingerprint: Fingerprint) -> CacheEntry | None:
    """The closest shared entry whose fingerprint matches, through the band indexes: an
    entry within Hamming distance 3 shares a band for certain, one further away usually."""
    columns = [_ENTRIES.c[name] for name in _ENTRY_COLUMNS]
    parts = [
        select(*columns)
        .where(band == value, _ENTRIES.c.shared.is_(True))
        .limit(_NEAR_CANDIDATES_PER_BAND)
        for band, value in zip(_BANDS, fingerprint.bands, strict=True)
    ]
    best: tuple[tuple[int, float], Any] | None = None
    seen: set[str] = set()
    for part in parts:
        for row in connection.execute(part).mappings():
            if row["image_hash"] in seen:
                continue
            seen.add(row["image_hash"])
            candidate = _fingerprint_of(row)
            if candidate is None or not fingerprint.matches(candidate):
                continue
            distance = fingerprint.distance(candidate)
            if best is None or distance < best[0]:
                best = (distance, row)
    return None if best is None else _entry(best[1], frozenset())


def _fingerprint_of(row: Any) -> Fingerprint | None:
    if row["phash"] is None or row["thumb"] is None:
        return None
    return Fingerprint(from_signed(int(row["phash"])), bytes(row["thumb"]))


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
    # A video's answer: {"duration_s", "frames"} (DESIGN §4.9); None for an image.
    video: dict[str, Any] | None = None
    # Decided on bytes the server hashed itself (not on claims): never re-decided.
    verified: bool = False
    # Of the upload the entry was decided on; None when it had too little structure.
    fingerprint: Fingerprint | None = None

    def visible_to(self, uploader: str) -> bool:
        return self.shared or uploader in self.uploaders

    def values(self) -> dict[str, Any]:
        """The columns that carry this entry's answer, to record it under another vote."""
        return {
            "category": self.category,
            "confidence": self.confidence,
            "description": self.description,
            "model": self.model,
            "inference_method": self.inference_method,
            "size_bytes": self.size_bytes,
            "video_details": orjson.dumps(self.video).decode() if self.video else None,
        } | fingerprint_columns(self.fingerprint)

    def dumps(self) -> bytes:
        payload = asdict(self)
        payload["uploaders"] = sorted(self.uploaders)
        fingerprint = self.fingerprint
        payload["fingerprint"] = (
            None if fingerprint is None else [fingerprint.phash, fingerprint.thumb.hex()]
        )
        return orjson.dumps(payload)

    @classmethod
    def loads(cls, raw: bytes) -> CacheEntry:
        payload = orjson.loads(raw)
        payload["uploaders"] = frozenset(payload["uploaders"])
        if payload.get("fingerprint") is not None:
            phash, thumb = payload["fingerprint"]
            payload["fingerprint"] = Fingerprint(phash, bytes.fromhex(thumb))
        # Entries stored by an older release lack newer fields: their defaults apply.
        known = cls.__dataclass_fields__
        return cls(**{name: value for name, value in payload.items() if name in known})


def load_entries(connection: Connection, hashes: list[str]) -> dict[str, CacheEntry]:
    """The entries among ``hashes``, with the uploaders of those not yet shared."""
    entries: dict[str, CacheEntry] = {}
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        rows = connection.execute(select(_ENTRIES).where(_ENTRIES.c.image_hash.in_(chunk)))
        unshared: dict[str, Any] = {}
        for row in rows.mappings():
            if row["shared"]:
                entries[row["image_hash"]] = _entry(row, frozenset())
            else:
                unshared[row["image_hash"]] = row
        if unshared:
            claims = connection.execute(
                select(_CLAIMS.c.image_hash, _CLAIMS.c.uploader, _CLAIMS.c.category).where(
                    _CLAIMS.c.image_hash.in_(list(unshared))
                )
            )
            uploaders: dict[str, set[str]] = {}
            for image_hash, uploader, category in claims:
                if unshared[image_hash]["category"] == category:
                    uploaders.setdefault(image_hash, set()).add(uploader)
            for image_hash, row in unshared.items():
                entries[image_hash] = _entry(row, frozenset(uploaders.get(image_hash, ())))
    return entries


def record_verified(connection: Connection, image_hash: str, values: dict[str, Any]) -> CacheEntry:
    """An answer for bytes the server hashed itself: shared at once and authoritative. It
    replaces any entry decided on claims (shared by a quorum or not) and leaves an earlier
    verified one as it is."""
    values = {**values, "shared": True, "verified": True}
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert_factory = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert_factory(_ENTRIES).values(**_new_row(image_hash, values))
        written = (
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["image_hash"],
                    set_=values,
                    where=_ENTRIES.c.verified.is_(False),
                ).returning(*_ENTRIES.c)
            )
            .mappings()
            .first()
        )
        if written is not None:
            return _entry(written, frozenset())
    else:
        replaced = connection.execute(
            update(_ENTRIES)
            .where(_ENTRIES.c.image_hash == image_hash, _ENTRIES.c.verified.is_(False))
            .values(**values)
        )
        if replaced.rowcount == 0:
            connection.execute(
                insert_ignoring_duplicates(
                    dialect, _ENTRIES, _new_row(image_hash, values), ["image_hash"]
                )
            )
    return _entry(_select_entry(connection, image_hash), frozenset())


def record_claim(
    connection: Connection,
    image_hash: str,
    values: dict[str, Any],
    uploader: str,
    quorum: int,
) -> CacheEntry:
    """An answer under a hash the client claims: record the uploader's vote, then decide.

    The entry is shared while one category has at least ``quorum`` distinct uploaders and
    strictly more than any other; a contradicting vote that breaks that demotes a shared
    entry to its own voters until the votes decide again. A verified entry is never
    changed by votes."""
    category = values["category"]
    connection.execute(
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
    claims = connection.execute(
        select(_CLAIMS.c.uploader, _CLAIMS.c.category).where(_CLAIMS.c.image_hash == image_hash)
    ).all()
    winner = _decided_category(Counter(claimed for _, claimed in claims), quorum)
    existing = _select_entry(connection, image_hash, required=False)
    if existing is None:
        connection.execute(
            insert_ignoring_duplicates(
                connection.dialect.name,
                _ENTRIES,
                _new_row(image_hash, {**values, "shared": winner == category}),
                ["image_hash"],
            )
        )
    elif not existing["verified"]:
        if winner == category and (category != existing["category"] or not existing["shared"]):
            # The votes settle on this answer: everyone gets it from now on.
            connection.execute(
                update(_ENTRIES)
                .where(_ENTRIES.c.image_hash == image_hash, _ENTRIES.c.verified.is_(False))
                .values(**values, shared=True)
            )
        elif existing["shared"] and winner != existing["category"]:
            connection.execute(
                update(_ENTRIES)
                .where(_ENTRIES.c.image_hash == image_hash, _ENTRIES.c.verified.is_(False))
                .values(shared=False, updated_at=values["updated_at"])
            )
    row = _select_entry(connection, image_hash)
    uploaders: frozenset[str] = frozenset()
    if not row["shared"]:
        uploaders = frozenset(name for name, claimed in claims if claimed == row["category"])
    return _entry(row, uploaders)


def _decided_category(votes: Counter[str], quorum: int) -> str | None:
    """The category with ``quorum`` or more votes and strictly more than any other."""
    ranked = votes.most_common(2)
    if not ranked or ranked[0][1] < quorum:
        return None
    if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
        return None
    return ranked[0][0]


def purge_model(connection: Connection, model: str) -> list[str]:
    """Delete the entries ``model`` produced and their claims; returns their hashes."""
    hashes = list(
        connection.execute(select(_ENTRIES.c.image_hash).where(_ENTRIES.c.model == model))
        .scalars()
        .all()
    )
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        connection.execute(delete(_CLAIMS).where(_CLAIMS.c.image_hash.in_(chunk)))
        connection.execute(delete(_ENTRIES).where(_ENTRIES.c.image_hash.in_(chunk)))
    return hashes


def _new_row(image_hash: str, values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "image_hash": image_hash, "hit_count": 0, "created_at": values["updated_at"]}


def _select_entry(connection: Connection, image_hash: str, *, required: bool = True) -> Any:
    row = (
        connection.execute(select(_ENTRIES).where(_ENTRIES.c.image_hash == image_hash))
        .mappings()
        .first()
    )
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
        video=orjson.loads(row["video_details"]) if row["video_details"] else None,
        verified=bool(row["verified"]),
        fingerprint=_fingerprint_of(row),
    )


_ENTRY_COLUMNS = [
    "image_hash",
    "category",
    "confidence",
    "description",
    "model",
    "inference_method",
    "size_bytes",
    "shared",
    "verified",
    "phash",
    "thumb",
    "video_details",
]
