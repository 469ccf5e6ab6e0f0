"""Run tests/test_kernels_exact.py (or part of it) in a new process with other environment
switches: the kernels compile again there (the cache is keyed on those switches)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_kernel_properties(env: dict, *pytest_args: str, files: tuple[str, ...] = ("tests/test_kernels_exact.py",)
                          ) -> None:
    """Assert the kernel property tests (or those of ``files``) pass under ``env`` (added to this
    process's environment)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                        *files, *pytest_args],
                       cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(r.stdout.splitlines()[-15:])
    assert r.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
