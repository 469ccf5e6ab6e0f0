"""Keep Numba's on-disk cache honest.

Numba invalidates a cached function when its own file changes, but not when a helper it inlined
from another file does (kernels/common.py, kernels/requant.py ...).  Before any kernel module is
imported, this drops the package's cache files if the sources of ``kernels/`` changed since they
were written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _sources_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(_HERE.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def drop_stale_cache() -> None:
    cache = _HERE / "__pycache__"
    stamp = cache / "kernels-sources.sha256"
    digest = _sources_digest()
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        if cache.is_dir():
            for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # read-only install: Numba then caches elsewhere or not at all
        pass
