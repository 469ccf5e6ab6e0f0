"""Keep Numba's on-disk cache honest.

Numba invalidates a cached function when its own file changes, but not when a function it
inlined or linked from another file does (kernels/common.py, kernels/requant.py, or any kernel
for accelsim/machine.py's loops).  :func:`drop_stale_cache` removes a package's Numba cache files
when any of the sources it depends on changed since they were written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

KERNELS_DIR = Path(__file__).resolve().parent


def sources_digest(files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def drop_stale_cache(package_dir: Path = KERNELS_DIR, depends_on: Iterable[Path] = (), tag: str = "kernels") -> None:
    """Delete ``package_dir/__pycache__``'s Numba files if the package's sources or ``depends_on`` changed."""
    package_dir = Path(package_dir)
    cache = package_dir / "__pycache__"
    stamp = cache / f"{tag}-sources.sha256"
    digest = sources_digest(list(package_dir.glob("*.py")) + list(depends_on))
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
