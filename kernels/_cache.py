"""A Numba cache that cannot go stale, and survives reinstalling the package.

Numba keys a cached function on its own source file only: a change to a helper it inlines from
another file (kernels/common.py), to a constant it froze from isa/table.py, or to a kernel that
accelsim/chip's loops link, leaves the cached machine code in place -- and wrong.  Numba's
in-tree ``__pycache__`` goes with every reinstall, so each install compiles everything again.

:class:`SourceKeyedLocator`, installed ahead of Numba's own locators for the compiled functions
of kernels/ and accelsim/chip/ (the only places with Numba code), keeps their cache in a
directory named by a digest of every source file of isa/, kernels/ and accelsim/chip/ (by
relative path and content), of the Numba,
llvmlite and Python versions and of the environment switches that change the generated code:

    $ACCELSIM_CACHE_DIR, else $NUMBA_CACHE_DIR/accelsim, else ~/.cache/accelsim (XDG_CACHE_HOME)
        numba/<digest>/<package folder>/<module>.<function>-<line>.pyXY.nbi|nbc

Any source change gives a new digest, hence an empty directory; identical sources at another path
(a reinstall, a virtual environment) give the same digest and reuse the cache.  Only the most
recent few digest directories are kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent
ROOT = KERNELS_DIR.parent
#: folders whose compiled functions use this cache, and whose sources the digest covers: the
#: kernels, the chip's loops and the specification they take their constants from
PACKAGES = ("isa", "kernels", "accelsim/chip")
#: environment switches that change the code Numba generates (the CPU is in Numba's own key)
ENV_SWITCHES = ("NUMBA_BOUNDSCHECK", "NUMBA_OPT", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_FASTMATH",
                "NUMBA_DISABLE_INTEL_SVML", "NUMBA_LOOP_VECTORIZE", "NUMBA_SLP_VECTORIZE")
KEEP = 3  # digest directories kept (the newest)


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _package_dir(py_file: str):
    """The covered folder a source file lies in (relative to the project root), or None."""
    try:
        rel = Path(py_file).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return rel.parent if any(rel.is_relative_to(pkg) for pkg in PACKAGES) else None


@lru_cache(maxsize=None)
def sources_digest() -> str:
    """The digest naming the cache directory (computed once per process)."""
    import llvmlite
    import numba

    h = hashlib.sha256()
    for f in _sources():
        h.update(str(f.relative_to(ROOT)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    h.update(f"{numba.__version__} {llvmlite.__version__} {sys.version}".encode())
    for name in ENV_SWITCHES:
        h.update(f"{name}={os.environ.get(name, '')}".encode())
    return h.hexdigest()[:20]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


@lru_cache(maxsize=None)
def cache_root() -> Path:
    """Where the digest directories live (the first writable of the documented places)."""
    if os.environ.get("ACCELSIM_CACHE_DIR"):
        candidates = [Path(os.environ["ACCELSIM_CACHE_DIR"])]
    elif os.environ.get("NUMBA_CACHE_DIR"):
        candidates = [Path(os.environ["NUMBA_CACHE_DIR"]) / "accelsim"]
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        candidates = [base / "accelsim"]
    candidates.append(Path(tempfile.gettempdir()) / f"accelsim-cache-{os.getuid() if hasattr(os, 'getuid') else 0}")
    for c in candidates:
        if _writable(c / "numba"):
            return c
    return candidates[-1]


def cache_dir() -> Path:
    """This build's directory: numba/<digest> under the cache root."""
    return cache_root() / "numba" / sources_digest()


def prune(keep: int = KEEP) -> None:
    """Remove all but the ``keep`` most recently used digest directories."""
    parent = cache_root() / "numba"
    current = cache_dir()
    try:
        current.mkdir(parents=True, exist_ok=True)
        os.utime(current)  # in use now
    except OSError:
        return
    try:
        dirs = sorted((d for d in parent.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return
    for d in [d for d in dirs if d != current][max(0, keep - 1):]:
        shutil.rmtree(d, ignore_errors=True)


def _make_locator():
    from numba.core.caching import _CacheLocator

    class SourceKeyedLocator(_CacheLocator):
        """Numba cache locator for the project's functions: one directory per source digest."""

        def __init__(self, py_func, py_file: str, package: Path) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(cache_dir() / "_".join(package.parts))

        def get_cache_path(self) -> str:
            return self._cache_path

        def get_source_stamp(self) -> str:
            return sources_digest()

        def get_disambiguator(self) -> str:
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file: str):
            package = _package_dir(py_file)
            if package is None:
                return None  # not ours: Numba's own locators
            self = cls(py_func, py_file, package)
            try:
                self.ensure_cache_path()
            except OSError:
                return None
            return self

    return SourceKeyedLocator


@lru_cache(maxsize=None)
def install() -> None:
    """Put the locator ahead of Numba's own (once per process, before any function is compiled)."""
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # renamed in Numba 0.62
    impl._locator_classes.insert(0, _make_locator())
    prune()
