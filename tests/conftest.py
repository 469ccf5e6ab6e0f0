"""Shared test settings: hypothesis runs fewer (never zero) examples under CI=true, and fewer
still when the kernels run as plain Python (NUMBA_DISABLE_JIT=1).  Under CI=true the reference
engine and the test extra's other packages must be installed: a missing onnxruntime, ai-edge-litert,
tflite-micro, torch, scikit-learn or mlxtend fails the run instead of skipping its tests."""

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings


def pytest_sessionstart(session):
    if os.environ.get("CI") != "true":
        return
    missing = [m for m in ("onnxruntime", "torch", "sklearn", "mlxtend", "ai_edge_litert", "tflite_micro") if importlib.util.find_spec(m) is None]
    if missing:
        raise pytest.UsageError(f"CI=true: {', '.join(missing)} (in the 'test' extra) not installed; their tests "
                                "would all be skipped")

settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nojit", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
if os.environ.get("NUMBA_DISABLE_JIT") == "1":
    settings.load_profile("nojit")
else:
    settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
