"""Perceptual fingerprints: the same picture recompressed, resized, re-encoded or stripped of
its EXIF gets (nearly) the same fingerprint; a different picture does not.

Two signals, both from the decoded upload (never stored as an image):

- a 64-bit DCT hash (pHash): the 8×8 lowest frequencies of a 32×32 grey thumbnail, one
  bit per coefficient above their median. Compared by Hamming distance;
- a 4×4 colour thumbnail (48 bytes): pHash ignores colour and absolute brightness, so two
  layouts alike in structure (burst shots, pages of one document) are told apart by it.
  Compared by mean absolute difference.

Pictures with little structure (flat colours, mostly empty pages) get no fingerprint: their
pHash bits are decided by noise, and near-duplicate matching would be guesswork.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from scipy.fft import dctn

BITS = 64
BANDS = 4
_BAND_BITS = BITS // BANDS
# Matching thresholds, chosen by bench/fingerprint_threshold.py (docs/CLASSIFICATION.md).
MAX_HAMMING = 6
MAX_THUMB_DISTANCE = 8.0
# At least this many of the 16 8×8 cells of the 32×32 grey thumbnail must show structure.
_MIN_TEXTURED_CELLS = 6
_CELL_MIN_STD = 4.0


@dataclass(frozen=True, slots=True)
class Fingerprint:
    phash: int  # unsigned 64-bit
    thumb: bytes  # 4×4 RGB

    @property
    def bands(self) -> tuple[int, ...]:
        """The hash split into four 16-bit bands: two hashes within Hamming distance 3
        share at least one band (pigeonhole), which is what the index looks up."""
        mask = (1 << _BAND_BITS) - 1
        return tuple((self.phash >> (_BAND_BITS * band)) & mask for band in range(BANDS))

    def distance(self, other: Fingerprint) -> tuple[int, float]:
        """(Hamming distance of the hashes, mean absolute difference of the thumbnails)."""
        colour = np.frombuffer(self.thumb, np.uint8).astype(np.int16)
        other_colour = np.frombuffer(other.thumb, np.uint8).astype(np.int16)
        return (self.phash ^ other.phash).bit_count(), float(np.abs(colour - other_colour).mean())

    def matches(self, other: Fingerprint) -> bool:
        """The same picture, within the conservative thresholds."""
        bits, colour = self.distance(other)
        return bits <= MAX_HAMMING and colour <= MAX_THUMB_DISTANCE


def fingerprint(image: Image.Image) -> Fingerprint | None:
    """The fingerprint of a decoded image as displayed (EXIF orientation applied), or None
    for a picture with too little structure. Blocking: call it in a worker thread."""
    shown = ImageOps.exif_transpose(image)
    rgb = shown.convert("RGB")
    # BOX reduces large images fast and averages away compression noise.
    small = rgb.resize((64, 64), Image.Resampling.BOX, reducing_gap=2.0)
    grey = np.asarray(small.convert("L").resize((32, 32), Image.Resampling.BOX), np.float64)
    cells = grey.reshape(4, 8, 4, 8).std(axis=(1, 3))
    if int((cells >= _CELL_MIN_STD).sum()) < _MIN_TEXTURED_CELLS:
        return None
    low = dctn(grey, norm="ortho")[:8, :8].flatten()
    bits = low > np.median(low)
    phash = 0
    for bit in bits:
        phash = (phash << 1) | int(bit)
    thumb = np.asarray(small.resize((4, 4), Image.Resampling.BOX), np.uint8).tobytes()
    return Fingerprint(phash=phash, thumb=thumb)


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed value a BIGINT column holds."""
    return value - (1 << BITS) if value >= 1 << (BITS - 1) else value


def from_signed(value: int) -> int:
    return value + (1 << BITS) if value < 0 else value
