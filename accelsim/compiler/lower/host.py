"""Host steps (QHost) between chip segments: a HOST instruction stops the chip after every
earlier instruction has finished; the host reads the input codes from DRAM, computes with ONNX
Runtime's float arithmetic and writes the output codes back, and the chip resumes."""

from __future__ import annotations

from isa import Instruction

from ..ir import QHost
from ..records import LayerRecord
from .builder import ProgramBuilder
from .common import slot_credits
from .registry import lowers


@lowers(QHost)
def lower_host(node: QHost, b: ProgramBuilder) -> None:
    call = len(b.host_steps)
    b.host_steps.append(node)
    y = b.tensor(node.output)
    record = LayerRecord(node.name, node.op_type, where="host", shape=f"{b.tensor(node.input).shape}->{y.shape}",
                         bits="float32")
    b.emit(slot_credits() + [Instruction("HOST", call=call)], record)
