"""Accuracy and latency of the local classifier on a labelled folder (one subfolder per category).

Run: PYTHONPATH=. python bench/local_accuracy.py [--images DIR] [--data-dir DIR] [--verbose]
Prints overall accuracy, per-category precision/recall, the confusion matrix and
per-image latency (p50/p90, split by whether OCR ran).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from xintu.categories import Category
from xintu.images.validation import prepare_image
from xintu.inference.local import LocalClassifier, LocalSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT / "tests" / "fixtures" / "images" / "local_eval"
SHORT = {
    Category.social_activities: "social",
    Category.pets: "pets",
    Category.single_person: "single",
    Category.foods: "foods",
    Category.travel_scenery: "scenery",
    Category.screenshot: "screen",
    Category.idcard: "idcard",
    Category.other: "other",
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(images: Path, data_dir: Path, verbose: bool) -> float:
    classifier = LocalClassifier(data_dir, LocalSettings())
    start = time.perf_counter()
    await classifier.load()
    load_s = time.perf_counter() - start
    rows: list[tuple[Category, Category, float, bool, str, str]] = []
    # CPU time (all threads) is less sensitive than wall time to other load on the machine.
    cpu_ms: list[float] = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        truth = Category(folder.name)
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp"}:
                continue
            t = time.perf_counter()
            cpu = time.process_time()
            prepared = prepare_image(path.read_bytes(), max_pixels=40_000_000)
            prediction = await classifier.classify(prepared)
            elapsed = (time.perf_counter() - t) * 1000
            cpu_ms.append((time.process_time() - cpu) * 1000)
            details = prediction.details or {}
            ocr_ran = bool(details.get("signals", {}).get("ocr_run"))
            rows.append(
                (truth, prediction.category, elapsed, ocr_ran, path.name, details.get("rule", ""))
            )
            if verbose or prediction.category != truth:
                mark = "  " if prediction.category == truth else "XX"
                labels = ", ".join(
                    f"{x['label']} {x['probability']:.2f}" for x in details.get("labels", [])[:3]
                )
                print(  # noqa: T201
                    f"{mark} {truth.value:18} -> {prediction.category.value:18} "
                    f"{prediction.confidence:.2f} "
                    f"{details.get('rule', ''):26} {elapsed:6.0f} ms  {folder.name}/{path.name}  "
                    f"faces={len(details.get('faces', []))} [{labels}]"
                )
    classifier.close()

    categories = list(Category)
    correct = sum(1 for truth, guess, *_ in rows if truth == guess)
    accuracy = correct / len(rows)
    print(f"\nimages: {len(rows)}   accuracy: {accuracy:.1%} ({correct}/{len(rows)})")  # noqa: T201
    print(f"model load (incl. first-run ONNX build if needed): {load_s:.2f} s\n")  # noqa: T201
    print(f"{'category':18} {'precision':>9} {'recall':>7} {'n':>4}")  # noqa: T201
    for category in categories:
        tp = sum(1 for t, g, *_ in rows if t == category and g == category)
        predicted = sum(1 for _, g, *_ in rows if g == category)
        actual = sum(1 for t, *_ in rows if t == category)
        precision = tp / predicted if predicted else float("nan")
        recall = tp / actual if actual else float("nan")
        print(f"{category.value:18} {precision:9.2f} {recall:7.2f} {actual:4}")  # noqa: T201
    print("\nconfusion (rows = truth, columns = prediction)")  # noqa: T201
    print(" " * 9 + "".join(f"{SHORT[c]:>8}" for c in categories))  # noqa: T201
    for truth_category in categories:
        counts = [sum(1 for t, g, *_ in rows if t == truth_category and g == c) for c in categories]
        print(f"{SHORT[truth_category]:>9}" + "".join(f"{n:8}" for n in counts))  # noqa: T201
    without_ocr = [r[2] for r in rows if not r[3]]
    with_ocr = [r[2] for r in rows if r[3]]
    cpu_without = [c for c, r in zip(cpu_ms, rows, strict=True) if not r[3]]
    cpu_with = [c for c, r in zip(cpu_ms, rows, strict=True) if r[3]]
    print("\nlatency per image (prepare_image + classify, 1 at a time)")  # noqa: T201
    series = (
        ("without OCR", without_ocr),
        ("with OCR", with_ocr),
        ("all", [r[2] for r in rows]),
        ("CPU w/o OCR", cpu_without),
        ("CPU with OCR", cpu_with),
    )
    for label, values in series:
        if values:
            print(  # noqa: T201
                f"  {label:12} n={len(values):3}  p50 {percentile(values, 0.5):6.0f} ms  "
                f"p90 {percentile(values, 0.9):6.0f} ms  mean {statistics.fmean(values):6.0f} ms"
            )
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.data_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args.images, Path(tmp), args.verbose))
    else:
        asyncio.run(run(args.images, args.data_dir, args.verbose))


if __name__ == "__main__":
    main()
