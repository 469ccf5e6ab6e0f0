"""The per-layer record the compiler fills: what a node became on the chip (or the host)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .tiling import Tiling


@dataclass
class LayerRecord:
    """One lowered node: its instructions in the program, its work and its weight storage.

    ``first_instruction`` is the node's first own instruction; the ``barrier`` instructions
    before it (draining the previous node's tokens) belong to it too.  Host nodes have
    ``where == "host"`` and no instructions.
    """

    name: str
    op: str
    where: str = "chip"
    shape: str = ""
    bits: str = ""
    macs: int = 0
    first_instruction: int = -1
    barrier: int = 0
    instructions: int = 0
    weight_bytes: int = 0            # DRAM bytes of the weight streams as stored
    dense_weight_bytes: int = 0      # the same weights dense-packed
    weight_formats: list[str] = field(default_factory=list)
    tiling: Optional[Tiling] = None

    @property
    def start(self) -> int:
        """The first instruction that belongs to the layer (its barrier included)."""
        return self.first_instruction - self.barrier

    def to_dict(self) -> dict:
        """JSON-ready fields (the tiling as a table)."""
        d = asdict(self)
        d["tiling"] = asdict(self.tiling) if self.tiling is not None else None
        return d
