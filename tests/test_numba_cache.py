"""The Numba cache cannot go stale (kernels/_cache.py): in a temporary copy of the sources, a
change to a helper that REQUANT inlines from another file (type_range in kernels/common.py)
takes effect on the next run, wherever the cache lives; an unchanged copy, at another path as
after a reinstall, loads the compiled kernel from the cache instead of compiling it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import numpy as np, kernels
from kernels.state import config_register
from isa.encoding import Instruction
cfg = config_register(Instruction("CONFIG", a="s8", w="s8", o="s8", clamp_min=-128, clamp_max=127).args)
mem = np.zeros(16, np.int64)
mem[0] = 1000                                   # an accumulator far above the s8 range
mem[9] = np.float32(1.0).view(np.int32)         # scale 1.0 in the parameter table at 8
kernels.requant(mem, cfg, 0, 4, 8, 1, 1, 32)    # REQUANT of one output into word 4
st = kernels.requant.stats
print(int(mem[4]), sum(st.cache_hits.values()), sum(st.cache_misses.values()))
"""


def _copy(dst: Path) -> Path:
    for pkg in ("isa", "kernels", "accelsim"):
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _probe(src: Path, env: dict) -> tuple[int, int, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "ACCELSIM_CACHE", "XDG_"))}
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=src, env={**clean, "PYTHONPATH": str(src), **env},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    value, hits, misses = (int(x) for x in r.stdout.split())
    return value, hits, misses


def _saturate_at_126(src: Path) -> None:
    common = src / "kernels" / "common.py"
    text = common.read_text()
    old = "return -(np.int64(1) << (bits - 1)), (np.int64(1) << (bits - 1)) - 1"
    assert old in text
    common.write_text(text.replace(old, "return -(np.int64(1) << (bits - 1)), (np.int64(1) << (bits - 1)) - 2"))


@pytest.mark.parametrize("where", ["NUMBA_CACHE_DIR", "user cache"])
def test_a_changed_helper_takes_effect_and_an_unchanged_copy_hits(tmp_path, where):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")} if where == "NUMBA_CACHE_DIR" \
        else {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = _copy(tmp_path / "a")
    assert _probe(first, env) == (127, 0, 1)        # compiled, saturates at 127
    assert _probe(first, env) == (127, 1, 0)        # from the cache
    moved = _copy(tmp_path / "b")                   # the same sources at another path (a reinstall)
    assert _probe(moved, env) == (127, 1, 0)
    _saturate_at_126(moved)                         # a helper REQUANT inlines, in another file
    assert _probe(moved, env) == (126, 0, 1)        # recompiled: the change takes effect
    assert _probe(first, env) == (127, 1, 0)        # the unchanged copy still has its own cache
