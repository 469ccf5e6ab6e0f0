"""The int8 wake-word models that ship in pymicro-wakeword 2.5.0 (Apache-2.0), streamed on the chip:
every invocation's output and every state variable bit-exact with LiteRT in each kernel set.

tests/data/wakeword/MODEL_rise.npy holds 25 frames of int8 features (3 x 40 codes each) that drive
the model's output from 0 towards 255: a random search over the codes, run once with LiteRT to
find inputs on which the output moves (outputs of plain noise stay near 0).  After them come
random frames, so the output falls again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.compiler.tflite import TFLiteCompiler, load_tflite, run_stream
from accelsim.compiler.tflite.runtime import interpreter, session

from .litert_ref import ENGINES
from .test_real_models import model_path

DATA = Path(__file__).resolve().parent / "data" / "wakeword"
# LiteRT warns that keeping every tensor is for debugging: the test reads the state tensors so
pytestmark = pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors.:UserWarning")
WAKEWORDS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")


def _frames(name: str) -> np.ndarray:
    rng = np.random.default_rng(len(name))
    rise = np.load(DATA / f"{name}_rise.npy")
    quiet = rng.integers(-128, -100, size=(20, 3, 40)).astype(np.int8)  # near-silent features: the output falls
    return np.concatenate([rise, quiet])[:, None]


@pytest.fixture(scope="module", params=WAKEWORDS)
def wakeword(request):
    return request.param, load_tflite(model_path(f"{request.param}.tflite"))


@pytest.mark.parametrize("engine", ENGINES)
def test_wakeword_stream_matches_litert(wakeword, engine):
    """Output and new state of every invocation, equal to LiteRT's (its state tensors read after
    each invocation, every tensor preserved); the outputs equal to tflite-micro's."""
    name, model = wakeword
    frames = _frames(name)
    compiled = TFLiteCompiler(model, engine=engine).compile()
    g = compiled.graph
    input_name = model.main.tensors[model.main.inputs[0]].name
    out_name = model.main.tensors[model.main.outputs[0]].name
    micro = engine == "tflm"  # tflite-micro keeps no intermediate tensors: outputs only
    it = session(model, engine) if micro else interpreter(model, engine, preserve=True)
    index = {} if micro else {d["name"]: d["index"] for d in it.get_tensor_details()}
    state: dict = {}
    outputs, expected, state_codes = [], [], 0
    for x in frames:
        got, _ = compiled.run({input_name: x, **state})
        outputs.append(got[out_name])
        if micro:
            expected.append(it({input_name: x})[out_name])
        else:
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            expected.append(it.get_tensor(it.get_output_details()[0]["index"]))
        for key, (out, _) in ({} if micro else g.states).items():
            want = it.get_tensor(index[g.tensors[g.outputs[out]].name])
            assert (got[out] == want).all(), f"state {key} differs after {len(outputs)} invocations"
            state_codes += want.size
        state = {key: got[out] for key, (out, _) in g.states.items()}
    outputs, expected = np.array(outputs), np.array(expected)
    assert outputs.dtype == np.uint8 and outputs.shape == expected.shape
    assert len(set(expected.ravel().tolist())) > 5, "the stimulus does not move the output"
    assert (outputs == expected).all(), f"{int((outputs != expected).sum())} of {len(frames)} outputs differ"
    assert micro or state_codes > 1000


def test_run_stream_is_the_interpreter_loop(wakeword):
    """run_stream from the initial state gives the outputs of a fresh interpreter."""
    name, model = wakeword
    frames = _frames(name)[:30]
    input_name = model.main.tensors[model.main.inputs[0]].name
    got = run_stream(TFLiteCompiler(model, engine="litert-ref").compile(), [{input_name: x} for x in frames])
    it = interpreter(model, "litert-ref")
    want = []
    for x in frames:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        want.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    assert [list(r) for r in got] == [[model.main.tensors[model.main.outputs[0]].name]] * len(frames)
    assert np.array_equal(np.array([next(iter(r.values())) for r in got]), np.array(want))


def test_states_are_inputs_and_outputs(wakeword):
    """Six streaming states in each model, named for their variables, starting from -128 (the zero
    point, what the CALL_ONCE subgraph assigns); each reads a tensor LiteRT has."""
    name, model = wakeword
    g = TFLiteCompiler(model, engine="litert-ref").compile().graph
    assert len(g.states) == 6
    for key, (out, init) in g.states.items():
        assert key in g.inputs and out in g.outputs and (init == -128).all()
    it = interpreter(model, "litert-ref")
    reads = {d["name"] for d in it.get_tensor_details()}
    assert {g.tensors[q].name for k, q in g.inputs.items() if k in g.states} <= reads
