"""Choose the near-duplicate thresholds of xintu/images/fingerprint.py by measurement.

Recall: every picture of the evaluation set (tests/fixtures/images/local_eval, 84 photos,
documents and screenshots) against its own copies as chat apps and phones make them: JPEG
quality 60–95, long side 720–2048, WebP, EXIF stripped. A copy is found when it matches
(Hamming ≤ H and colour ≤ C) and shares one of the four 16-bit bands the index looks up.

False matches: every pair of different files. Pairs from one source photo (the set's
``_crop``, ``_warm``, ``_dark``, ``_rot``, ``_flip``, ``_bw``, ``_soft`` edits, bursts) are
reported apart, with whether a match would change the category (the folder name).

    .venv/bin/python bench/fingerprint_threshold.py
"""

from __future__ import annotations

import io
import itertools
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xintu.images.fingerprint import Fingerprint, fingerprint  # noqa: E402

EVAL = Path(__file__).resolve().parent.parent / "tests/fixtures/images/local_eval"


def encode(image: Image.Image, fmt: str, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue()))


def resized(image: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def copies(image: Image.Image) -> dict[str, Image.Image]:
    rgb = image.convert("RGB")
    out = {f"jpeg q{q}": encode(rgb, "JPEG", quality=q) for q in (60, 75, 85, 95)}
    for side in (720, 1080, 1440, 2048):
        out[f"long side {side} q80"] = encode(resized(rgb, side), "JPEG", quality=80)
    out["webp q75"] = encode(rgb, "WEBP", quality=75)
    out["webp 1080 q60"] = encode(resized(rgb, 1080), "WEBP", quality=60)
    out["exif stripped q90"] = encode(rgb, "JPEG", quality=90, exif=b"")
    out["720 q60 (chat app)"] = encode(resized(rgb, 720), "JPEG", quality=60)
    return out


def bursts(image: Image.Image) -> list[Image.Image]:
    """Burst shots: the camera moved a little (shifted crops of 92 %)."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    cw, ch = int(w * 0.92), int(h * 0.92)
    return [
        rgb.crop((dx, dy, dx + cw, dy + ch))
        for dx, dy in ((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch))
    ]


def source(path: Path) -> str:
    stem = path.stem
    for suffix in ("_flip", "_crop", "_warm", "_dark", "_rot", "_soft", "_bw", "_left", "_closeup"):
        stem = stem.removesuffix(suffix)
    return stem


def shares_band(a: Fingerprint, b: Fingerprint) -> bool:
    return any(x == y for x, y in zip(a.bands, b.bands, strict=True))


def main() -> None:
    files = sorted(p for p in EVAL.rglob("*") if p.suffix in (".jpg", ".png"))
    prints: dict[Path, Fingerprint] = {}
    skipped = []
    for path in files:
        value = fingerprint(Image.open(path))
        if value is None:
            skipped.append(path.name)
        else:
            prints[path] = value
    print(f"{len(files)} files, {len(prints)} with a fingerprint; too little structure: {skipped}")

    thresholds = [(h, c) for h in (4, 6, 8, 10, 12) for c in (8.0, 12.0, 16.0)]
    copy_distances: list[tuple[str, int, float, bool]] = []
    for path, value in prints.items():
        for name, copy in copies(Image.open(path)).items():
            other = fingerprint(copy)
            if other is None:
                copy_distances.append((name, 64, 255.0, False))
                continue
            bits, colour = value.distance(other)
            copy_distances.append((name, bits, colour, shares_band(value, other)))
    pairs = []
    for (a, fa), (b, fb) in itertools.combinations(prints.items(), 2):
        bits, colour = fa.distance(fb)
        same_source = source(a) == source(b)
        pairs.append((a, b, bits, colour, same_source, a.parent.name != b.parent.name))
    burst_pairs = []
    for path in prints:
        shots = [fingerprint(shot) for shot in bursts(Image.open(path))]
        for x, y in itertools.combinations([s for s in shots if s is not None], 2):
            burst_pairs.append(x.distance(y))

    print(
        f"\ncopies: {len(copy_distances)}; distinct-source pairs: "
        f"{sum(1 for p in pairs if not p[4])}; same-source edit pairs: "
        f"{sum(1 for p in pairs if p[4])}; burst pairs: {len(burst_pairs)}"
    )
    print(
        "\n  H   C  | copy recall (index) | false matches distinct | category changes | "
        "edit pairs matched | burst pairs matched"
    )
    for h, c in thresholds:
        found = sum(1 for _, b, col, band in copy_distances if b <= h and col <= c and band)
        false = [p for p in pairs if not p[4] and p[2] <= h and p[3] <= c]
        changes = sum(1 for p in false if p[5])
        edits = sum(1 for p in pairs if p[4] and p[2] <= h and p[3] <= c)
        burst = sum(1 for b, col in burst_pairs if b <= h and col <= c)
        distinct = sum(1 for p in pairs if not p[4])
        edit_pairs = sum(1 for p in pairs if p[4])
        print(
            f" {h:2d} {c:4.0f}  | {found / len(copy_distances):7.1%} "
            f"({found}/{len(copy_distances)})  | {len(false):4d} / {distinct}"
            f"          | {changes:4d}             | {edits:3d} / {edit_pairs}"
            f"          | {burst:3d} / {len(burst_pairs)}"
        )
    worst: dict[str, int] = {}
    for name, bits, _, _ in copy_distances:
        worst[name] = max(worst.get(name, 0), bits)
    print("\nlargest Hamming distance per kind of copy:", worst)
    closest = sorted((p for p in pairs if not p[4]), key=lambda p: (p[2], p[3]))[:5]
    print("closest distinct pairs (bits, colour):")
    for a, b, bits, colour, _, cross in closest:
        print(
            f"  {a.parent.name}/{a.name} ~ {b.parent.name}/{b.name}: {bits}, {colour:.1f}"
            f"{' (different category)' if cross else ''}"
        )


if __name__ == "__main__":
    main()
