"""The cold-start warm-up (accelsim.chip.warm): it compiles the value loops' kernels with the very
argument types the loops pass, so a process that runs a program afterwards loads every one of them
from the cache instead of compiling it; and it starts only when it would help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from accelsim.chip import warm

from .subprocess_pytest import ROOT

RUN_A_CNN = """
import json, numpy as np
from accelsim import zoo
from accelsim.chip import Simulator, warm
from accelsim.compiler import compile_model
from accelsim.quant import QuantConfig, quantize_model
for name in ("small_cnn", "residual_odd", "dw_separable"):  # the 8-bit conv, residual and full loops
    m = zoo.build(name, fold_bn=False)
    shape = zoo.input_shape(m)
    x = np.random.default_rng(0).normal(0, 1, (4,) + shape[1:]).astype(np.float32)
    compiled = compile_model(quantize_model(m, x, QuantConfig(), progress=False), batch=1)
    compiled.run({"input": x[:1]}, sim=Simulator(compiled.chip))
out = {}
for disp, args in warm.entries():
    s = disp.stats
    out[disp.py_func.__qualname__] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
print(json.dumps(out))
"""


def test_a_run_after_the_warm_up_loads_every_kernel_it_uses_from_the_cache(tmp_path):
    env = {**os.environ, "ACCELSIM_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_DISABLE_JIT", None)
    w = subprocess.run([sys.executable, "-m", "accelsim.chip.warm"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    assert w.returncode == 0, w.stderr[-3000:]
    marks = {p.name for p in tmp_path.glob("numba/*/*") if p.is_file()}
    assert marks == {warm.DONE}, marks  # the mark left, the lock gone
    r = subprocess.run([sys.executable, "-c", RUN_A_CNN], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert all(misses == 0 for _, misses in stats.values()), stats  # nothing compiled again
    used = {"load", "loadwin", "loadw", "store", "gemm8", "requant_fp32", "maxpool", "run_timing", "vadd",
            "dwconv_into", "gemm_into", "requant"}
    assert all(stats[name][0] >= 1 for name in used), stats  # ... and these loaded from the cache


@pytest.fixture()
def marks(tmp_path, monkeypatch):
    monkeypatch.setattr(warm, "cache_dir", lambda: tmp_path)
    monkeypatch.delenv("ACCELSIM_NO_WARM", raising=False)
    monkeypatch.setattr(warm.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    return tmp_path


def test_the_warm_up_starts_only_when_it_would_help(marks, monkeypatch):
    assert warm.wanted()  # an empty cache, two CPUs
    (marks / warm.LOCK).touch()
    assert not warm.wanted()  # another warm-up is running
    old = time.time() - warm.STALE_S - 5
    os.utime(marks / warm.LOCK, (old, old))
    assert warm.wanted()  # ... it died long ago
    (marks / warm.DONE).touch()
    assert not warm.wanted()  # this build's cache was warmed
    (marks / warm.DONE).unlink()
    monkeypatch.setenv("ACCELSIM_NO_WARM", "1")
    assert not warm.wanted()
    monkeypatch.delenv("ACCELSIM_NO_WARM")
    monkeypatch.setattr(warm.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not warm.wanted()  # one CPU: nothing to gain
