"""Drop what a virtualenv carries but a running service never reads (build stage only).

`python3 deploy/prune.py /venv`: test suites and C headers inside installed packages, and
the installers themselves (the final image installs nothing). Prints what it saved.
"""

import shutil
import sys
from pathlib import Path

# Folders whose name says they are tests or build inputs, inside a package.
PRUNED_DIRS = {"tests", "test", "testing_data", "include"}
PRUNED_SUFFIXES = {".pyi", ".pxd", ".pyx", ".c", ".h", ".hpp", ".cpp"}
# Importable names that must stay although they match the rules above.
KEPT = {"numpy/testing", "numpy/_core/include", "numpy/core/include"}
INSTALLERS = ("pip", "setuptools", "wheel", "_distutils_hack")


def size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def main(venv: Path) -> None:
    before = size(venv)
    for site in venv.glob("lib/python3*/site-packages"):
        for name in INSTALLERS:
            for item in site.glob(f"{name}*"):
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        for path in sorted(site.rglob("*"), reverse=True):
            relative = path.relative_to(site).as_posix()
            if any(relative.startswith(kept) for kept in KEPT):
                continue
            if path.is_dir() and path.name in PRUNED_DIRS and path.parent != site:
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and path.suffix in PRUNED_SUFFIXES:
                path.unlink()
    after = size(venv)
    print(f"venv {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
