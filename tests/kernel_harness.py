"""Run one instruction through its kernel on a copy of a golden MachineState.

The kernels see every buffer in one flat int64 array (kernels.state); this adapter lays the
golden buffers out that way, calls the kernel with absolute addresses, and reads them back.
"""

from __future__ import annotations

import numpy as np

import kernels as K
from isa import Instruction
from isa.semantics import WORD_BITS, MachineState
from isa.table import BUFFERS, DTYPES, WEIGHT_FORMATS
from kernels.state import config_register, window_register


class KernelFault(Exception):
    """A kernel returned a non-zero status."""

    def __init__(self, status: int):
        self.status = status
        super().__init__(status)


def run_kernel(state: MachineState, ins: Instruction) -> MachineState:
    s = state.copy()
    base, at = {}, 0
    for b in BUFFERS:
        base[b] = at
        at += s.buffers[b].size
    mem = np.concatenate([s.buffers[b] for b in BUFFERS]).astype(np.int64)
    dram = s.dram
    cfg = config_register(s.config)
    a = ins.args
    ab = lambda buf, addr: base[buf] + addr  # noqa: E731
    op = ins.op
    if op == "LOAD":
        bits, signed = DTYPES[a["dtype"]]
        st = K.load(dram, mem, a["dram"], ab(a["buf"], a["sram"]), a["x"], a["y"], a["y_stride"], bits,
                    signed, WORD_BITS[a["buf"]])
    elif op == "LOADWIN":
        bits, signed = DTYPES[a["dtype"]]
        st = K.loadwin(dram, mem, window_register(s.window), a["dram"], ab(a["buf"], a["sram"]), a["pix0"],
                       a["npix"], a["c0"], a["nc"], bits, signed, WORD_BITS[a["buf"]])
    elif op == "LOADW":
        bits, signed = DTYPES[a["dtype"]]
        st = K.loadw(dram, mem, ab("WGT", a["sram"]), a["dram"], a["count"], WEIGHT_FORMATS.index(a["format"]),
                     bits, signed, a["param"], a["zero"])
    elif op == "STORE":
        st = K.store(mem, dram, ab(a["buf"], a["sram"]), a["dram"], a["x"], a["y"], a["y_stride"],
                     DTYPES[a["dtype"]][0])
    elif op == "GEMM":
        st = K.gemm(mem, cfg, ab("INP", a["inp"]), ab("WGT", a["wgt"]), ab("ACC", a["acc"]), a["m"], a["n"],
                    a["k"], a["accumulate"])
    elif op == "DWCONV":
        st = K.dwconv(mem, cfg, ab("INP", a["inp"]), ab("WGT", a["wgt"]), ab("ACC", a["acc"]), a["m"], a["r"],
                      a["c"], a["accumulate"], np.empty(0, np.uint8), np.empty(0, np.uint8))
    elif op == "REQUANT":
        st = K.requant(mem, cfg, ab("ACC", a["src"]), ab(a["dst_buf"], a["dst"]), ab("PRM", a["prm"]), a["m"],
                       a["n"], WORD_BITS[a["dst_buf"]])
    elif op in ("VADD", "VMUL"):
        fn = K.vadd if op == "VADD" else K.vmul
        st = fn(mem, cfg, ab(a["a_buf"], a["a"]), ab(a["b_buf"], a["b"]), ab(a["dst_buf"], a["dst"]),
                a["n"], a["bn"], ab("PRM", a["prm"]), WORD_BITS[a["dst_buf"]])
    elif op in ("VMAX", "VMIN"):
        fn = K.vmax if op == "VMAX" else K.vmin
        st = fn(mem, ab(a["a_buf"], a["a"]), ab(a["b_buf"], a["b"]), ab(a["dst_buf"], a["dst"]), a["n"],
                WORD_BITS[a["dst_buf"]])
    elif op == "MAXPOOL":
        st = K.maxpool(mem, ab(a["src_buf"], a["src"]), ab(a["dst_buf"], a["dst"]), a["m"], a["r"], a["c"],
                       WORD_BITS[a["dst_buf"]])
    elif op == "AVGPOOL":
        st = K.avgpool(mem, cfg, ab(a["src_buf"], a["src"]), ab(a["dst_buf"], a["dst"]), a["m"], a["r"],
                       a["c"], a["divisor"], WORD_BITS[a["dst_buf"]], a["even"])
    elif op == "SUMPOOL":
        st = K.sumpool(mem, cfg, ab(a["src_buf"], a["src"]), ab("ACC", a["acc"]), a["m"], a["r"], a["c"],
                       a["accumulate"])
    elif op == "SHR":
        st = K.shr(mem, ab(a["src_buf"], a["src"]), ab(a["dst_buf"], a["dst"]), a["n"], a["shift"],
                   a["round"], WORD_BITS[a["dst_buf"]])
    elif op == "VLUT":
        st = K.vlut(mem, ab(a["src_buf"], a["src"]), ab(a["dst_buf"], a["dst"]), a["n"], ab("PRM", a["prm"]),
                    WORD_BITS[a["dst_buf"]])
    else:
        raise ValueError(f"no kernel for {op}")
    if op in ("GEMM", "DWCONV", "SUMPOOL"):  # these return the overflow count, never a fault
        s.overflows = st
    elif st != 0:
        raise KernelFault(st)
    for b in BUFFERS:
        s.buffers[b] = mem[base[b]:base[b] + s.buffers[b].size].copy()
    return s


def assert_same_state(a: MachineState, b: MachineState) -> None:
    assert np.array_equal(a.dram, b.dram), "DRAM differs"
    for name in BUFFERS:
        diff = np.flatnonzero(a.buffers[name] != b.buffers[name])
        assert diff.size == 0, (f"{name} differs at {diff[:8].tolist()}: golden "
                                f"{a.buffers[name][diff[:8]].tolist()} kernel {b.buffers[name][diff[:8]].tolist()}")
