"""The program being built: DRAM allocation after the activations, the DRAM image, the
instruction list with barriers between nodes, and the per-layer records."""

from __future__ import annotations

import numpy as np

from isa import Instruction
from isa.quant import pack_bits

from ...chip import ChipConfig
from ..ir import QGraph, QTensor
from ..passes.layout import DramLayout, align
from ..records import LayerRecord
from .common import barrier, bits_of


class ProgramBuilder:
    """Lowering state shared by every node: ``alloc`` DRAM, ``place`` bytes in the image,
    ``emit`` instructions (after a barrier that waits for the previous node) and records."""

    def __init__(self, graph: QGraph, chip: ChipConfig, layout: DramLayout, flattened: dict[str, tuple],
                 weights: str) -> None:
        self.graph, self.chip, self.layout = graph, chip, layout
        self.flattened = flattened  # 2-D tensor -> the NCHW shape it was flattened from
        self.weights = weights      # weight storage: auto, dense, bitmask, rle or codebook
        self.at = layout.top        # first free DRAM byte
        self.image_parts: list[tuple[int, np.ndarray]] = []
        self.instructions: list[Instruction] = []
        self.layers: list[LayerRecord] = []
        self.prev_slots = 2         # input-slot credits the previous node leaves queued
        self.host_steps: list = []  # QHost nodes, by the call number of their HOST instruction

    # ---- tensors
    def tensor(self, name: str) -> QTensor:
        return self.graph.tensors[name]

    def addr(self, name: str) -> int:
        """DRAM byte address of an activation."""
        return self.layout.region[name]

    def storage(self, name: str) -> str:
        """Element type of an activation in DRAM."""
        return self.layout.storage[name]

    # ---- DRAM
    def alloc(self, nbytes: int) -> int:
        """``nbytes`` of DRAM for constants; the next allocation starts on the next aligned byte."""
        addr = self.at
        self.at = align(self.at + nbytes)
        return addr

    def place(self, addr: int, data: np.ndarray) -> None:
        """Bytes the DRAM image holds at ``addr``."""
        self.image_parts.append((addr, np.asarray(data, np.uint8)))

    def place_constants(self) -> None:
        """The graph's quantized constant operands, in DRAM order at their storage type."""
        for name, q in self.graph.constants.items():
            t = self.tensor(name)
            v = np.asarray(q, np.int64).reshape(t.shape)
            if v.ndim == 4 and not t.rowmajor:
                v = v.transpose(0, 2, 3, 1)
            self.place(self.addr(name), pack_bits(v.ravel(), bits_of(self.storage(name))))

    def place_words(self, addr: int, words: np.ndarray) -> None:
        """32-bit words (parameter tables) at ``addr``."""
        self.place(addr, pack_bits(np.asarray(words, np.int64), 32))

    def image(self) -> np.ndarray:
        image = np.zeros(self.at, np.uint8)
        for addr, data in self.image_parts:
            image[addr:addr + data.size] = data
        return image

    # ---- instructions
    def emit_body(self, body: list[Instruction], slots: int) -> tuple[int, int]:
        """Append a node's instructions after a barrier (none before the first node); ``slots``
        is how many input-slot credits they leave queued.  Returns (first own index, barrier length)."""
        fence = barrier(self.prev_slots) if self.instructions else []
        self.instructions += fence + body
        self.prev_slots = slots
        return len(self.instructions) - len(body), len(fence)

    def emit(self, body: list[Instruction], record: LayerRecord, slots: int = 2) -> None:
        """Append a node's instructions and its record."""
        record.first_instruction, record.barrier = self.emit_body(body, slots)
        record.instructions = len(body)
        self.layers.append(record)
