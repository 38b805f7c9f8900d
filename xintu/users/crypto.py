"""Encryption of sensitive columns (WeChat session keys) under ``XINTU_DATA_KEY``.

``XINTU_DATA_KEY`` is a random URL-safe string, not raw key material of a fixed length, so
the 32-byte AES-256-GCM key is derived from it with HKDF-SHA256 (no salt, info
``xintu/data-key/v1``). A stored value is ``nonce (12 bytes) || ciphertext || tag``; the
column's purpose is bound in as associated data, so a value copied into another column
does not decrypt.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"xintu/data-key/v1"
_NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """The value was not encrypted under this key (or was altered)."""


def derive_data_key(data_key: str) -> bytes:
    """The AES-256 key derived from the configured ``XINTU_DATA_KEY`` string."""
    if not data_key:
        raise ValueError("XINTU_DATA_KEY is empty")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        data_key.encode()
    )


class DataCipher:
    """AES-256-GCM for values stored in the database; never logs what it handles."""

    def __init__(self, data_key: str) -> None:
        self._aead = AESGCM(derive_data_key(data_key))

    def __repr__(self) -> str:
        return "DataCipher(<redacted>)"

    def encrypt(self, plaintext: str, purpose: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), purpose.encode())

    def decrypt(self, stored: bytes, purpose: str) -> str:
        if len(stored) <= _NONCE_BYTES:
            raise DecryptionFailed("value too short")
        try:
            plaintext = self._aead.decrypt(
                stored[:_NONCE_BYTES], stored[_NONCE_BYTES:], purpose.encode()
            )
        except InvalidTag as exc:
            raise DecryptionFailed("wrong key or altered value") from exc
        return plaintext.decode()
