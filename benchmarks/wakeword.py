"""The pymicro-wakeword models streamed on the simulated chip against LiteRT, in each kernel set,
measured in the same run.

    python benchmarks/wakeword.py [--models alexa okay_nabu] [--frames 200] [--json out.json]

Each model (fetched by scripts/fetch_models.py) compiled for each engine, then ``--frames``
invocations of random near-silent features: accelsim's ``run_stream`` (the chip program plus the
host's part, one invocation per run) against a fresh LiteRT interpreter in the matching kernel set.
Rows: compile seconds, milliseconds per invocation of each, ``ratio`` = accelsim / LiteRT, chip
cycles and energy per invocation, and whether every output and state was equal (the run stops
with an error if not).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accelsim.chip import Simulator  # noqa: E402
from accelsim.compiler.tflite import TFLiteCompiler, load_tflite  # noqa: E402
from accelsim.compiler.tflite.runtime import KERNEL_SETS, interpreter, invoke  # noqa: E402

MODELS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")


def _model_dir() -> Path:
    import importlib.util

    if "fetch_models" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
        sys.modules["fetch_models"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fetch_models"])
    return sys.modules["fetch_models"].model_dir()


def measure(name: str, engine: str, frames: list[np.ndarray]) -> dict:
    model = load_tflite(_model_dir() / f"{name}.tflite")
    in_name = model.main.tensors[model.main.inputs[0]].name
    out_name = model.main.tensors[model.main.outputs[0]].name
    t0 = time.perf_counter()
    compiled = TFLiteCompiler(model, engine=engine).compile()
    compile_s = time.perf_counter() - t0
    g, sim = compiled.graph, Simulator(compiled.chip)
    compiled.run({in_name: frames[0]}, sim=sim)  # warm: the first run builds the simulator's tables
    state, ours, cycles, energy = {}, [], 0, 0.0
    t0 = time.perf_counter()
    for x in frames:
        out, rep = compiled.run({in_name: x, **state}, sim=sim)
        state = {k: out[o] for k, (o, _) in g.states.items()}
        ours.append(out[out_name])
        cycles += rep.cycles
        energy += sum(rep.energy_pj.values())
    ours_s = time.perf_counter() - t0
    it = interpreter(model, engine)
    t0 = time.perf_counter()
    theirs = [invoke(it, {in_name: x})[out_name] for x in frames]
    litert_s = time.perf_counter() - t0
    if not np.array_equal(np.array(ours), np.array(theirs)):
        raise SystemExit(f"{name} / {engine}: outputs differ from LiteRT's")
    n = len(frames)
    return dict(model=name, engine=engine, compile_s=compile_s, accelsim_ms=1e3 * ours_s / n,
                litert_ms=1e3 * litert_s / n, ratio=ours_s / litert_s, cycles=cycles / n, energy_uj=energy / n / 1e6,
                equal=True, distinct_outputs=len({int(v) for v in np.array(theirs).ravel()}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--json", help="write the rows as JSON")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    frames = [rng.integers(-128, -60, size=(1, 3, 40)).astype(np.int8) for _ in range(args.frames)]
    rows = [measure(m, e, frames) for m in args.models for e in KERNEL_SETS]
    print(f"{'model':12s} {'engine':15s} {'compile s':>9s} {'accelsim ms':>11s} {'LiteRT ms':>9s} {'ratio':>7s} "
          f"{'cycles':>8s} {'energy uJ':>9s}  equal")
    for r in rows:
        print(f"{r['model']:12s} {r['engine']:15s} {r['compile_s']:9.2f} {r['accelsim_ms']:11.2f} "
              f"{r['litert_ms']:9.3f} "
              f"{r['ratio']:6.0f}x {r['cycles']:8.0f} {r['energy_uj']:9.3f}  {'yes' if r['equal'] else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
