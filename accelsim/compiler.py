"""Compile a quantized graph (accelsim.ir) to a chip program, and run it like the ONNX model.

Every activation lives in DRAM in NHWC order at its quantized type.  A QConv becomes the tiled
instruction sequence of accelsim.tiling with its real numerics: weights reordered to
[n][kh][kw][c] and laid out in tile order, a per-channel table of bias, fp32 scale and shift
(``scale = float32(float32(s_in * s_w[n]) / s_out)``, ONNX Runtime's order), padding that reads
the input zero point, and the output clamp of any fused activation.  Between layers a token
barrier drains the queues, so the next layer's loads wait for this layer's stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from isa import Instruction, encode_program
from isa.quant import dequantize, pack_bits, quantize
from isa.table import DTYPES

from . import compression
from .config import ChipConfig
from .ir import ModelError, QAdd, QAvgPool, QConcat, QConv, QGlobalAvgPool, QGraph, QLut, QMaxPool, QReshape
from .program import Program, TensorRef
from .simulator import Simulator
from .tiling import (ConvLayer, PoolLayer, add_program, avgpool_program, choose_tiling, conv_program,
                     dwconv_program, global_avgpool_program, lut_program, pool_program, window_counts)

ALIGN = 64


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


def storage_types(graph: QGraph) -> dict[str, str]:
    """Each tensor's element type in DRAM: its own, except a 4-bit tensor whose NHWC rows (or a
    concat's or grouped conv's channel slices) would not start and end on a byte, which is stored
    in 8 bits (same signedness); the MAC array still reads 4-bit operands."""
    odd = set()
    for node in graph.nodes:
        if isinstance(node, QConcat) and any(graph.tensors[t].shape[1] % 2 for t in node.inputs):
            odd.add(node.output)
        if isinstance(node, QConv) and node.group > 1 and (node.weight.shape[0] // node.group) % 2:
            odd.add(node.output)
    mem = {}
    for name, t in graph.tensors.items():
        bits = DTYPES[t.dtype][0]
        mem[name] = t.dtype[0] + "8" if bits == 4 and (t.shape[1] % 2 or name in odd) else t.dtype
    for node in graph.nodes:  # a reshape aliases its input's bytes
        if isinstance(node, QReshape):
            mem[node.output] = mem[node.input]
    return mem


def _nhwc_shape(shape: tuple) -> tuple:
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape)


@dataclass
class CompiledModel:
    """A program plus what the host does around it (quantize inputs, dequantize outputs)."""

    program: Program
    graph: QGraph
    chip: ChipConfig
    layers: list[dict] = field(default_factory=list)
    regions: dict[str, TensorRef] = field(default_factory=dict)  # every activation's DRAM tensor (NHWC)

    def segments(self) -> np.ndarray:
        """The layer index of every instruction (a barrier belongs to the layer after it)."""
        n = self.program.words.shape[0]
        seg = np.zeros(n, np.int64)
        for i, layer in enumerate(self.layers):
            if layer["where"] == "chip":
                seg[layer["first_instruction"] - layer["barrier"]:] = i
        return seg

    def run(self, inputs: Mapping[str, np.ndarray], *, sim: Optional[Simulator] = None, values: bool = True):
        """Float inputs by graph input name -> (float outputs by graph output name, report)."""
        sim = sim or Simulator(self.chip)
        feeds = {}
        for fname, qname in self.graph.inputs.items():
            if fname not in inputs:
                raise ModelError("<graph>", "input", f"missing input {fname!r}")
            t = self.graph.tensors[qname]
            x = np.asarray(inputs[fname], np.float32)
            if fname in self.graph.input_clips:  # a Clip before the input's QuantizeLinear, in float
                lo, hi = self.graph.input_clips[fname]
                x = np.clip(x, np.float32(lo) if lo is not None else None, np.float32(hi) if hi is not None else None)
            if x.size != int(np.prod(t.shape)):
                raise ModelError("<graph>", "input", f"input {fname!r} has shape {x.shape}, expected {t.shape}")
            x = x.reshape(t.shape)  # a Flatten/Reshape before the input's QuantizeLinear runs here
            q = quantize(x, t.scale, t.zero_point, t.dtype)
            feeds[qname] = q.transpose(0, 2, 3, 1) if q.ndim == 4 else q
        raw, report = sim.run(self.program, feeds, values=values, segments=self.segments())
        outputs = {}
        if values:
            for fname, qname in self.graph.outputs.items():
                t = self.graph.tensors[qname]
                q = raw[qname]
                q = q.transpose(0, 3, 1, 2) if q.ndim == 4 else q
                flat = self.program.meta.get("flattened", {}).get(qname)
                if flat is not None:  # flattened on the chip in NHWC order: the model's order is NCHW
                    n, c, h, w = flat
                    q = q.reshape(n, h, w, c).transpose(0, 3, 1, 2).reshape(q.shape)
                outputs[fname] = dequantize(q, t.scale, t.zero_point)
            if self.graph.host_nodes:
                outputs.update(self._run_host(outputs))
            outputs = {k: v for k, v in outputs.items() if k in self.graph.graph_outputs}
        return outputs, report

    def _run_host(self, floats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float ops after the chip (e.g. Softmax), evaluated by onnx's reference evaluator."""
        import onnx
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        produced = {o for n in self.graph.host_nodes for o in n.output}
        needed = sorted({i for n in self.graph.host_nodes for i in n.input if i in floats})
        outs = [o for o in self.graph.graph_outputs if o in produced]
        g = helper.make_graph(list(self.graph.host_nodes), "host",
                              [helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, floats[i].shape) for i in needed],
                              [helper.make_empty_tensor_value_info(o) for o in outs], list(self.graph.host_initializers))
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.graph.opset)])
        result = ReferenceEvaluator(model).run(None, {i: floats[i] for i in needed})
        return dict(zip(outs, result))


WEIGHT_FORMATS = compression.WEIGHT_CHOICES


def _weight_streams(w_nhwc: np.ndarray, layer: ConvLayer, tiling, dtype: str, zero: int, fmt: str, chip) -> dict:
    """Encode each (n tile, c chunk) of the weights: the cheapest fetch on the chip, or ``fmt``."""
    streams = {}
    for n0 in range(0, layer.out_c, tiling.tn):
        for c0 in range(0, layer.in_c, tiling.tc):
            chunk = w_nhwc[n0:n0 + tiling.tn, :, :, c0:c0 + tiling.tc].ravel()
            if fmt == "auto":
                st = compression.encode_for_chip(chunk, dtype, chip, zero)
            elif fmt == "dense":
                st = compression.encode_dense(chunk, dtype)
            elif fmt == "bitmask":
                st = compression.encode_bitmask(chunk, dtype, zero)
            elif fmt == "rle":
                st = min((compression.encode_rle(chunk, dtype, rb, zero) for rb in range(1, 9)), key=lambda x: x.nbytes)
            else:
                st = compression.encode_codebook(chunk, dtype) or compression.encode_dense(chunk, dtype)
            streams[(n0, c0)] = st
    return streams


def compile_graph(graph: QGraph, chip: Optional[ChipConfig] = None, weights: str = "auto") -> CompiledModel:
    """Lay out DRAM, lower every node and assemble the program.

    ``weights``: how weight tiles are stored -- ``auto`` picks, per tile, the format with the
    cheapest fetch on this chip (accelsim.compression.encode_for_chip); or one of dense, bitmask,
    rle, codebook (codebook falls back to dense for a tile with more than 2^bits values).
    """
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights={weights!r}: expected one of {', '.join(WEIGHT_FORMATS)}")
    chip = chip or ChipConfig()
    # DRAM regions for activations (a reshape aliases its input), each at its storage type
    mem = storage_types(graph)
    region: dict[str, int] = {}
    flat_from: dict[str, tuple] = {}  # 2-D tensor name -> the NCHW shape it was flattened from
    at = 0
    for node in graph.nodes:
        if isinstance(node, QReshape):
            src, dst = graph.tensors[node.input], graph.tensors[node.output]
            region[node.output] = region.get(node.input, -1)
            spatial = len(src.shape) == 4 and src.shape[2] * src.shape[3] > 1 and src.shape[1] > 1
            if len(src.shape) == 4 and len(dst.shape) == 2:
                if spatial and not node.nhwc:
                    flat_from[node.output] = src.shape
            elif node.input in flat_from and len(dst.shape) == 2:
                flat_from[node.output] = flat_from[node.input]
            elif (node.input in flat_from or spatial) and dst.shape != src.shape \
                    and dst.shape != flat_from.get(node.input) and not node.nhwc:
                raise ModelError(node.name, node.op_type, f"reshaping {src.shape} to {dst.shape} changes the element "
                                                          "order of the chip's NHWC layout")
    views = {n.output for n in graph.nodes if isinstance(n, QReshape) and n.nhwc and len(graph.tensors[n.output].shape) == 4}
    for node in graph.nodes:  # a flattened NCHW tensor feeds a fully connected layer (its weight
        ins = getattr(node, "inputs", [node.input]) if not isinstance(node, QAdd) else [node.a, node.b]
        if not isinstance(node, QReshape) and set(ins) & views:
            raise ModelError(node.name, node.op_type, "reads an NCHW -> NHWC transposed tensor; only a Flatten may")
        if isinstance(node, (QConv, QReshape)):  # columns are permuted) or another reshape only
            continue
        for t in ins:
            if t in flat_from:
                raise ModelError(node.name, node.op_type, f"input {t!r} is a flattened NCHW tensor; the chip keeps "
                                                          "NHWC order, which only a fully connected layer can absorb")
    for name, t in graph.tensors.items():
        if region.get(name, -1) < 0:
            region[name] = at
            at = _align(at + (int(np.prod(t.shape)) * DTYPES[mem[name]][0] + 7) // 8)
    for node in graph.nodes:  # aliases resolved after their sources are placed
        if isinstance(node, QReshape):
            region[node.output] = region[node.input]
    image_parts: list[tuple[int, np.ndarray]] = []
    instructions: list[Instruction] = []
    layers = []
    prev_slots = 2  # input-slot credits the previous node leaves queued (read only after a first node)
    for node in graph.nodes:
        if isinstance(node, QReshape):
            continue
        if isinstance(node, QMaxPool):
            x, y = graph.tensors[node.input], graph.tensors[node.output]
            from isa.quant import qrange

            pl = PoolLayer(node.name, x.shape[2], x.shape[3], x.shape[1], node.kernel[0], node.kernel[1],
                           node.stride[0], node.stride[1], node.pads[0], node.pads[1], y.shape[2], y.shape[3],
                           node.dilation[0])
            if node.dilation[0] != node.dilation[1]:
                raise ModelError(node.name, node.op_type, "different vertical and horizontal dilations")
            if mem[x.name] != mem[y.name]:
                raise AssertionError("a max pool keeps its tensor's storage type")
            body = pool_program(pl, chip, mem[x.name], qrange(x.dtype)[0], input_addr=region[x.name],
                                output_addr=region[y.name])
            prev_slots = _emit(instructions, layers, body, prev_slots, node, f"{x.shape}->{y.shape}", x.dtype)
            continue
        if isinstance(node, QAdd):
            a, b, y = graph.tensors[node.a], graph.tensors[node.b], graph.tensors[node.output]
            ra, rb = np.float32(a.scale) / np.float32(y.scale), np.float32(b.scale) / np.float32(y.scale)
            record = np.array([a.zero_point, b.zero_point, int(ra.view(np.int32)), 0, int(rb.view(np.int32)), 0, 0, 0, 0],
                              np.int64)
            param_addr = at
            image_parts.append((param_addr, pack_bits(record, 32)))
            at = _align(at + 36)
            config = {"a": a.dtype, "w": "s8", "o": y.dtype, "o_zp": y.zero_point, "mode": "fp32",
                      "a_mem": mem[a.name], "o_mem": mem[y.name],
                      "clamp_min": node.clamp[0], "clamp_max": node.clamp[1]}
            body = add_program(int(np.prod(a.shape)), chip, config, a_addr=region[a.name], b_addr=region[b.name],
                               param_addr=param_addr, output_addr=region[y.name])
            prev_slots = _emit(instructions, layers, body, prev_slots, node, f"{a.shape}+{b.shape}->{y.shape}", a.dtype)
            continue
        if isinstance(node, QGlobalAvgPool):
            from isa.quant import qrange

            x, y = graph.tensors[node.input], graph.tensors[node.output]
            _, c, h, wd = x.shape
            scale = np.float32(x.scale) / (np.float32(y.scale) * np.float32(h * wd))  # ONNX Runtime's order
            table = np.concatenate([np.zeros(c, np.int64), np.full(c, scale, np.float32).view(np.int32),
                                    np.zeros(c, np.int64)])
            param_addr = at
            image_parts.append((param_addr, pack_bits(table, 32)))
            at = _align(at + 12 * c)
            lo, hi = node.clamp or qrange(y.dtype)
            config = {"a": x.dtype, "w": "s8", "o": y.dtype, "a_zp": x.zero_point, "o_zp": y.zero_point,
                      "mode": "fp32", "clamp_min": lo, "clamp_max": hi, "a_mem": mem[x.name], "o_mem": mem[y.name]}
            try:
                body = global_avgpool_program(h * wd, c, chip, config, input_addr=region[x.name],
                                              param_addr=param_addr, output_addr=region[y.name])
            except ValueError as e:
                raise ModelError(node.name, node.op_type, str(e)) from None
            prev_slots = _emit(instructions, layers, body, prev_slots, node, f"{x.shape}->{y.shape}", x.dtype)
            continue
        if isinstance(node, QAvgPool):
            x, y = graph.tensors[node.input], graph.tensors[node.output]
            at, body = _avgpool(node, x, y, chip, region, mem, at, image_parts)
            prev_slots = _emit(instructions, layers, body, prev_slots, node, f"{x.shape}->{y.shape}", x.dtype)
            continue
        if isinstance(node, (QConcat, QLut)):
            at, body = _table_copies(node, graph, chip, region, mem, at, image_parts)
            y = graph.tensors[node.output]
            ins = ", ".join(str(graph.tensors[t].shape) for t in getattr(node, "inputs", [node.input]))
            prev_slots = _emit(instructions, layers, body, prev_slots, node, f"{ins}->{y.shape}",
                               graph.tensors[node.input].dtype)
            continue
        if not isinstance(node, QConv):
            raise ModelError(node.name, node.op_type, "no lowering for this node yet")
        x, y = graph.tensors[node.input], graph.tensors[node.output]
        w = np.asarray(node.weight, np.int64)
        if len(x.shape) == 4:
            _, c, h, wd = x.shape
        else:
            c, h, wd = x.shape[1], 1, 1
            if node.input in flat_from:  # columns in NCHW flatten order -> our NHWC order
                _, fc, fh, fw = flat_from[node.input]
                w = w.reshape(w.shape[0], fc, fh, fw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1, 1, 1)
        if node.stride[0] != node.stride[1] or node.dilation[0] != node.dilation[1]:
            raise ModelError(node.name, node.op_type, "different vertical and horizontal strides or dilations")
        geometry = dict(stride=node.stride[0], pad_top=node.pads[0], pad_left=node.pads[1], pad_bottom=node.pads[2],
                        pad_right=node.pads[3], dilation=node.dilation[0])
        if node.group > 1 and node.group == c == w.shape[0] and w.shape[1] == 1:  # depthwise
            layer = ConvLayer(node.name, h, wd, c, w.shape[2], w.shape[3], w.shape[0], **geometry)
            at = _depthwise(node, layer, x, y, w, chip, region, mem, at, image_parts, instructions, layers, prev_slots)
            prev_slots = 2
            continue
        # one GEMM layer per group: group g reads input channels [g*cg, (g+1)*cg) and writes output
        # channels [g*ng, (g+1)*ng) of the full NHWC tensors
        cg, ng = c // node.group, w.shape[0] // node.group
        entry = None
        for g in range(node.group):
            layer = ConvLayer(node.name, h, wd, cg, w.shape[2], w.shape[3], ng, **geometry,
                              in_pitch=c, in_c0=g * cg, out_pitch=w.shape[0], out_c0=g * ng)
            sl = slice(g * ng, (g + 1) * ng)
            try:
                at, prev_slots, part = _lower_conv(node, layer, x, y, w[sl], node.w_scale[sl], node.bias[sl], chip,
                                                   weights, region, mem, at, image_parts, instructions, prev_slots)
            except ValueError as e:
                raise ModelError(node.name, node.op_type, str(e)) from None
            if entry is None:
                entry = part
            else:
                for key in ("macs", "weight_bytes", "dense_weight_bytes"):
                    entry[key] += part[key]
                entry["weight_formats"] = sorted(set(entry["weight_formats"]) | set(part["weight_formats"]))
                entry["instructions"] = len(instructions) - entry["first_instruction"]
        entry["shape"] = f"{x.shape}->{y.shape}"
        layers.append(entry)
    instructions.append(Instruction("HALT"))
    image = np.zeros(at, np.uint8)
    for addr, data in image_parts:
        image[addr:addr + data.size] = data
    tensors = {q: TensorRef(region[q], _nhwc_shape(graph.tensors[q].shape), mem[q], "input")
               for q in graph.inputs.values()}
    tensors.update({q: TensorRef(region[q], _nhwc_shape(graph.tensors[q].shape), mem[q], "output")
                    for q in graph.outputs.values()})
    program = Program(encode_program(instructions), image, tensors, {"format": graph.source_format})
    if set(graph.outputs.values()) & views:
        raise ModelError("<graph>", "Transpose", "a graph output is an NCHW -> NHWC transposed tensor")
    program.meta["flattened"] = {q: list(flat_from[q]) for q in graph.outputs.values() if q in flat_from}
    regions = {name: TensorRef(region[name], _nhwc_shape(t.shape), mem[name], "output") for name, t in graph.tensors.items()}
    for n in graph.host_nodes:
        layers.append({"name": n.name or n.output[0], "op": n.op_type, "macs": 0, "tiling": None,
                       "first_instruction": -1, "barrier": 0, "instructions": 0, "weight_bytes": 0,
                       "shape": "", "bits": "float32", "where": "host"})
    return CompiledModel(program, graph, chip, layers, regions)


def _lower_conv(node, layer: ConvLayer, x, y, w: np.ndarray, w_scale: np.ndarray, bias: np.ndarray, chip, weights: str,
                region: dict, mem: dict, at: int, image_parts: list, instructions: list,
                prev_slots: int) -> tuple[int, int, dict]:
    """Lower one GEMM-shaped convolution (or one group of a grouped one): weight streams, parameter
    table and instructions after a barrier.  Returns the new DRAM top, its slot count and its
    layer entry."""
    w_bits, a_bits = DTYPES[node.w_dtype][0], DTYPES[x.dtype][0]
    tiling = choose_tiling(layer, chip, w_bits, a_bits)
    streams = _weight_streams(w.transpose(0, 2, 3, 1), layer, tiling, node.w_dtype, node.w_zero_point, weights, chip)
    weight_addr = at
    param_addr = _align(weight_addr + sum(st.nbytes for st in streams.values()) + 64)
    top = _align(param_addr + 12 * layer.out_c)
    config = {"a": x.dtype, "w": node.w_dtype, "o": y.dtype, "a_zp": x.zero_point, "w_zp": node.w_zero_point,
              "o_zp": y.zero_point, "mode": "fp32", "clamp_min": node.clamp[0], "clamp_max": node.clamp[1],
              "acc_bits": 32 if max(a_bits, w_bits) <= 8 else 48, "a_mem": mem[x.name], "o_mem": mem[y.name]}
    lp = conv_program(layer, chip, w_bits, a_bits, tiling, config=config, pad_value=x.zero_point,
                      addrs={"input": region[x.name], "weight": weight_addr, "param": param_addr,
                             "output": region[y.name]}, streams=streams)
    # weights in tile order: [n][kh][kw][c] per (n tile, c chunk), each chunk its own stream
    end = weight_addr
    for addr, n0, tn, c0, tc in lp.weight_chunks:
        data = np.frombuffer(streams[(n0, c0)].data, np.uint8)
        image_parts.append((addr, data))
        end = max(end, addr + data.size)
    if end > param_addr:
        raise AssertionError("weight layout overran its region")
    # parameter table, tile by tile: bias[tn], fp32 scale bits[tn], shift[tn] at 12 * n0
    scale = (np.float32(x.scale) * w_scale.astype(np.float32)) / np.float32(y.scale)
    table = np.zeros(3 * layer.out_c, np.int64)
    for n0 in range(0, layer.out_c, lp.tiling.tn):
        tn = min(lp.tiling.tn, layer.out_c - n0)
        table[3 * n0:3 * n0 + tn] = bias[n0:n0 + tn]
        table[3 * n0 + tn:3 * n0 + 2 * tn] = scale[n0:n0 + tn].astype(np.float32).view(np.int32)
    image_parts.append((param_addr, pack_bits(table, 32)))
    barrier = _barrier(prev_slots) if instructions else []  # loads wait for the previous stores
    instructions += barrier + lp.instructions
    entry = {"name": node.name, "op": node.op_type, "macs": layer.macs, "tiling": lp.tiling,
             "first_instruction": len(instructions) - len(lp.instructions), "barrier": len(barrier),
             "instructions": len(lp.instructions), "weight_bytes": end - weight_addr,
             "shape": "", "bits": f"{node.w_dtype}x{x.dtype}", "where": "chip",
             "weight_formats": sorted({st.format for st in streams.values()}),
             "dense_weight_bytes": sum((tn * layer.k_h * layer.k_w * tc * w_bits + 7) // 8
                                       for _, _, tn, _, tc in lp.weight_chunks)}
    return top, lp.tiling.slots, entry


def _avgpool(node: QAvgPool, x, y, chip, region: dict, mem: dict, at: int, image_parts: list) -> tuple[int, list]:
    """Average pool: SUMPOOL + REQUANT with one fp32 scale s_in / (s_out * count) per distinct count."""
    from isa.quant import qrange

    _, c, h, wd = x.shape
    _, _, oh, ow = y.shape
    if node.dilation[0] != node.dilation[1]:
        raise ModelError(node.name, node.op_type, "different vertical and horizontal dilations")
    if node.count_include_pad:
        per_pixel = [node.kernel[0] * node.kernel[1]] * (oh * ow)
    else:
        rows = window_counts(h, oh, node.kernel[0], node.stride[0], node.pads[0], node.dilation[0])
        cols = window_counts(wd, ow, node.kernel[1], node.stride[1], node.pads[1], node.dilation[1])
        per_pixel = [r * q for r in rows for q in cols]
    if min(per_pixel) == 0:
        raise ModelError(node.name, node.op_type, "a pooling window lies entirely in the padding")
    divisors = sorted(set(per_pixel))
    counts = [divisors.index(d) for d in per_pixel]
    param_addr = at
    table = np.zeros(3 * c * len(divisors), np.int64)
    for j, d in enumerate(divisors):
        scale = np.float32(x.scale) / (np.float32(y.scale) * np.float32(d))  # as QLinearGlobalAveragePool
        table[3 * c * j + c:3 * c * j + 2 * c] = np.full(c, scale, np.float32).view(np.int32)
    lo, hi = qrange(y.dtype)
    config = {"a": x.dtype, "w": "s8", "o": y.dtype, "a_zp": x.zero_point, "o_zp": y.zero_point, "mode": "fp32",
              "clamp_min": lo, "clamp_max": hi, "a_mem": mem[x.name], "o_mem": mem[y.name]}
    pl = PoolLayer(node.name, h, wd, c, node.kernel[0], node.kernel[1], node.stride[0], node.stride[1], node.pads[0],
                   node.pads[1], oh, ow, node.dilation[0])
    # same quantization in and out: the mean of the integers, exactly, ties to even (padding
    # counted in reads the zero point, padding left out reads 0 and is not counted)
    same = (x.scale, x.zero_point, x.dtype) == (y.scale, y.zero_point, y.dtype)
    divide = (divisors, x.zero_point if node.count_include_pad else 0) if same else None
    try:
        body, cc = avgpool_program(pl, chip, config, counts, input_addr=region[x.name], param_addr=param_addr,
                                   output_addr=region[y.name], divide=divide)
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None
    # tables chunk by chunk: for chunk c0 of n channels, bias[n], scale[n], shift[n] at 12 * c0
    chunked = np.zeros_like(table)
    for j in range(len(divisors)):
        base = 3 * c * j
        for c0 in range(0, c, cc):
            n = min(cc, c - c0)
            chunked[base + 3 * c0 + n:base + 3 * c0 + 2 * n] = table[base + c:base + c + n]
    if divide is not None:  # AVGPOOL divides the integers itself: no tables
        return param_addr, body
    image_parts.append((param_addr, pack_bits(chunked, 32)))
    return _align(param_addr + 12 * c * len(divisors)), body


def _table_copies(node, graph: QGraph, chip, region: dict, mem: dict, at: int, image_parts: list) -> tuple[int, list]:
    """Concat (each input copied, or requantized by a table, into its channel slice) or an
    elementwise table map, as strided DMA through the vector unit."""
    from .frontend import lut_table

    y = graph.tensors[node.output]
    if isinstance(node, QLut) and node.table.ndim == 2:  # a table per channel: one channel column at a time
        x = graph.tensors[node.input]
        c = y.shape[1]
        xbits, ybits = DTYPES[mem[x.name]][0], DTYPES[mem[y.name]][0]
        if min(xbits, ybits) < 8:
            raise ModelError(node.name, node.op_type, "per-channel tables need 8-bit elements")
        pieces = []
        for k in range(c):
            image_parts.append((at, pack_bits(np.asarray(node.table[k], np.int64), 32)))
            pieces.append({"src": region[x.name] + k * xbits // 8, "dst": region[y.name] + k * ybits // 8,
                           "src_type": mem[x.name], "dst_type": mem[y.name], "rows": int(np.prod(y.shape)) // c, "cols": 1,
                           "src_pitch": c, "dst_pitch": c, "table": at})
            at = _align(at + 1024)
        try:
            return at, lut_program(pieces, chip)
        except ValueError as e:
            raise ModelError(node.name, node.op_type, str(e)) from None
    srcs = [graph.tensors[t] for t in node.inputs] if isinstance(node, QConcat) else [graph.tensors[node.input]]
    total_c = y.shape[1]
    rows = int(np.prod(y.shape)) // total_c
    pieces, c0 = [], 0
    ybits = DTYPES[mem[y.name]][0]
    for t in srcs:
        ci = t.shape[1] if isinstance(node, QConcat) else total_c
        if isinstance(node, QLut):
            table = node.table
        elif (t.scale, t.zero_point, t.dtype) == (y.scale, y.zero_point, y.dtype) and node.clamp is None:
            table = None
        else:
            table = lut_table(t, y, lambda v: v)
            if node.clamp is not None:  # a fused Relu / Clip: clamp the table
                table = np.clip(table, *node.clamp)
        if ybits == 4 and (c0 % 2 or total_c % 2):
            raise ModelError(node.name, node.op_type, "4-bit channel slices must start and end on bytes")
        addr = None
        if table is not None:
            addr = at
            image_parts.append((addr, pack_bits(np.asarray(table, np.int64), 32)))
            at = _align(at + 1024)
        pieces.append({"src": region[t.name], "dst": region[y.name] + c0 * ybits // 8, "src_type": mem[t.name],
                       "dst_type": mem[y.name], "rows": rows, "cols": ci, "src_pitch": ci, "dst_pitch": total_c,
                       "table": addr})
        c0 += ci
    try:
        return at, lut_program(pieces, chip)
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None


def _depthwise(node, layer, x, y, w, chip, region, mem, at, image_parts, instructions, layers, prev_slots) -> int:
    """Lower a depthwise QConv; appends its instructions and layer entry; returns the new DRAM top."""
    w_bits = DTYPES[node.w_dtype][0]
    c, window = layer.in_c, layer.k_h * layer.k_w
    weight_addr = at
    param_addr = _align(weight_addr + (c * window * w_bits + 7) // 8 + 64)
    top = _align(param_addr + 12 * c)
    config = {"a": x.dtype, "w": node.w_dtype, "o": y.dtype, "a_zp": x.zero_point, "w_zp": node.w_zero_point,
              "o_zp": y.zero_point, "mode": "fp32", "clamp_min": node.clamp[0], "clamp_max": node.clamp[1],
              "acc_bits": 32 if max(DTYPES[x.dtype][0], w_bits) <= 8 else 48, "a_mem": mem[x.name], "o_mem": mem[y.name]}
    try:
        body, chunks, cc = dwconv_program(layer, chip, config, x.zero_point, input_addr=region[x.name],
                                          weight_addr=weight_addr, param_addr=param_addr, output_addr=region[y.name])
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None
    w_rc = w[:, 0].transpose(1, 2, 0).reshape(window, c)  # (C, 1, kh, kw) -> [kh*kw][C]
    for addr, c0, n in chunks:
        image_parts.append((addr, pack_bits(w_rc[:, c0:c0 + n].ravel(), w_bits)))
    scale = (np.float32(x.scale) * node.w_scale.astype(np.float32)) / np.float32(y.scale)
    table = np.zeros(3 * c, np.int64)
    for c0 in range(0, c, cc):
        n = min(cc, c - c0)
        table[3 * c0:3 * c0 + n] = node.bias[c0:c0 + n]
        table[3 * c0 + n:3 * c0 + 2 * n] = scale[c0:c0 + n].astype(np.float32).view(np.int32)
    image_parts.append((param_addr, pack_bits(table, 32)))
    barrier = _barrier(prev_slots) if instructions else []
    instructions += barrier + body
    layers.append({"name": node.name, "op": node.op_type, "macs": layer.out_h * layer.out_w * c * window,
                   "tiling": None, "first_instruction": len(instructions) - len(body), "barrier": len(barrier),
                   "instructions": len(body), "weight_bytes": sum((window * n * w_bits + 7) // 8 for _, _, n in chunks),
                   "shape": f"{x.shape}->{y.shape}", "bits": f"{node.w_dtype}x{x.dtype}", "where": "chip"})
    return top


def layer_table(compiled: CompiledModel, report) -> list[dict]:
    """Per-layer rows: op, shape, bit widths, MACs, cycles, utilization, DRAM bytes, energy, where."""
    rows = []
    segments = iter(report.segments)
    for layer in compiled.layers:
        if layer["where"] == "host":
            rows.append({"name": layer["name"], "op": layer["op"], "shape": "", "bits": "float32", "macs": 0,
                         "cycles": 0, "utilization": 0.0, "dram_weight_bytes": 0, "dram_activation_bytes": 0,
                         "dram_param_bytes": 0, "energy_pj": 0.0, "where": "host"})
            continue
        seg = next(segments)
        rows.append({"name": layer["name"], "op": layer["op"], "shape": layer["shape"], "bits": layer["bits"],
                     "macs": layer["macs"], "cycles": seg.cycles, "utilization": seg.mac_utilization,
                     "dram_weight_bytes": seg.dram_read_bytes["weight"],
                     "dram_activation_bytes": seg.dram_read_bytes["input"] + seg.dram_write_bytes["output"],
                     "dram_param_bytes": seg.dram_read_bytes["param"], "energy_pj": seg.energy_pj["total"],
                     "where": layer["where"]})
    return [{k: (v.item() if isinstance(v, (np.integer, np.floating)) else v) for k, v in r.items()} for r in rows]


def _emit(instructions: list, layers: list, body: list, prev_slots: int, node, shape: str, bits: str,
          macs: int = 0, weight_bytes: int = 0) -> int:
    """Append one node's instructions (after a barrier) and its layer entry; returns its slot count."""
    barrier = _barrier(prev_slots) if instructions else []
    instructions += barrier + body
    layers.append({"name": node.name, "op": node.op_type, "macs": macs, "tiling": None,
                   "first_instruction": len(instructions) - len(body), "barrier": len(barrier),
                   "instructions": len(body), "weight_bytes": weight_bytes, "shape": shape, "bits": bits,
                   "where": "chip"})
    return 2


def _barrier(slots: int) -> list[Instruction]:
    """Drain the token queues between layers: compute waits for the last stores (the two
    output-slot credits still queued), then hands the load unit one token; the load unit drains
    the ``slots`` input-slot credits the last GEMMs pushed and takes that token."""
    return ([Instruction("NOP", unit="compute", pop_next=1)] * 2
            + [Instruction("NOP", unit="compute", push_prev=1)]
            + [Instruction("NOP", unit="load", pop_next=1)] * (slots + 1))
