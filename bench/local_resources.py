"""Cold start, resident memory and a 20-way burst of the local classifier.

Run: PYTHONPATH=. python bench/local_resources.py [--fresh-build]
Cold start is measured in a new interpreter: imports, model load (and, with
--fresh-build, the one-time ONNX conversion) and the first classification.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "tests" / "fixtures" / "images" / "local_eval"
BURST_FILES = [
    "pets/chelsea.jpg",
    "foods/coffee.jpg",
    "single_person/astronaut.jpg",
    "social_activities/group_3_plain_1.jpg",
    "screenshot/phone_chat_1080x2340.png",
    "idcard/idcard_front_1.jpg",
    "travel_scenery/china.jpg",
    "other/rocket.jpg",
]

CHILD = """
import asyncio, json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from xintu.images.validation import prepare_image
from xintu.inference.local import LocalClassifier, LocalSettings

def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

async def main() -> None:
    data_dir, eval_dir, files = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    local = LocalClassifier(data_dir, LocalSettings())
    image = prepare_image((eval_dir / files[0]).read_bytes(), 40_000_000)
    first = await local.classify(image)
    t_first = time.perf_counter() - t0
    images = [prepare_image((eval_dir / f).read_bytes(), 40_000_000) for f in files]
    burst = images * 3
    t1 = time.perf_counter()
    results = await asyncio.gather(*(local.classify(i) for i in burst[:20]), return_exceptions=True)
    t_burst = time.perf_counter() - t1
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    print(json.dumps({"cold_start_s": t_first, "first": first.category.value, "rss_mb": rss_mb(),
                      "burst_n": len(results), "burst_errors": errors, "burst_s": t_burst,
                      "peak_in_flight": local.peak_in_flight}))
    local.close()

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--fresh-build", action="store_true", help="empty data dir: include conversion"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) if args.fresh_build else args.data_dir
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(data_dir), str(EVAL), *BURST_FILES],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"cold start to first answer (in process): {result['cold_start_s']:.2f} s")  # noqa: T201
    print(f"process wall time incl. interpreter start and burst: {wall:.2f} s")  # noqa: T201
    print(f"resident memory after load + burst: {result['rss_mb']:.0f} MB")  # noqa: T201
    print(  # noqa: T201
        f"burst: {result['burst_n']} concurrent classifications in {result['burst_s']:.2f} s, "
        f"errors: {len(result['burst_errors'])}, peak in flight: {result['peak_in_flight']}"
    )


if __name__ == "__main__":
    main()
