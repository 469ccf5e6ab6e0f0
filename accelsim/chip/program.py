"""A program for the chip: 128-bit instruction words plus the DRAM image they run against.

``Program(words, dram_image, tensors)``: ``dram_image`` is the initial DRAM contents (weights,
parameter tables, ...) placed from address 0; ``tensors`` names DRAM regions that hold inputs and
outputs (``TensorRef``), so a run can take and return arrays by name.  ``save``/``load`` use a
``.axp`` file: a numpy ``.npz`` archive with the words, the image and a JSON description.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from isa import assemble, disassemble
from isa.encoding import WORD_DTYPE
from isa.quant import pack_bits, unpack_bits
from isa.table import DTYPES

FORMAT_VERSION = 1


class ProgramError(ValueError):
    """A program file or program object is malformed."""


@dataclass(frozen=True)
class TensorRef:
    """A packed tensor in DRAM: byte address, shape (row-major) and element type."""

    addr: int
    shape: tuple[int, ...]
    dtype: str
    role: str = "input"  # "input" or "output"

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return (self.count * DTYPES[self.dtype][0] + 7) // 8

    def write(self, dram: np.ndarray, values: np.ndarray, name: str = "") -> None:
        v = np.asarray(values)
        if v.shape != tuple(self.shape):
            raise ProgramError(f"tensor {name}: expected shape {tuple(self.shape)}, got {v.shape}")
        bits, signed = DTYPES[self.dtype]
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if v.size and (v.dtype.kind not in "iu" or v.min() < lo or v.max() > hi):
            raise ProgramError(f"tensor {name}: values must be integers in {lo}..{hi} ({self.dtype})")
        if self.dtype == "u4" or self.dtype == "s4":
            # keep the neighbouring nibble of a tensor that starts or ends mid-byte intact
            packed = pack_bits(v.ravel(), 4)
            dram[self.addr:self.addr + packed.size - 1] = packed[:-1]
            last = self.addr + packed.size - 1
            if self.count % 2:
                dram[last] = (dram[last] & 0xF0) | (packed[-1] & 0x0F)
            else:
                dram[last] = packed[-1]
        else:
            packed = pack_bits(v.ravel(), bits)
            dram[self.addr:self.addr + packed.size] = packed

    def read(self, dram: np.ndarray) -> np.ndarray:
        bits, signed = DTYPES[self.dtype]
        return unpack_bits(dram[self.addr:self.addr + self.nbytes], self.count, bits, signed).reshape(self.shape)


def _read_only_image(image) -> np.ndarray:
    """The DRAM image as a read-only uint8 vector: one already so is shared, anything else copied.
    (A simulator restores only the bytes a run may have written when the image is the same.)"""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 1 and not image.flags.writeable:
        return image
    out = np.array(image, dtype=np.uint8).ravel()
    out.setflags(write=False)
    return out


@dataclass
class Program:
    """Instruction words, the DRAM image, named tensors and free-form metadata."""

    words: np.ndarray
    dram_image: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    tensors: dict[str, TensorRef] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = np.asarray(self.words)
        if w.ndim != 2 or w.shape[1] != 2 or w.dtype.kind not in "ui":
            raise ProgramError(f"words must be an (n, 2) integer array, got {w.shape} {w.dtype}")
        self.words = w.astype(WORD_DTYPE)
        self.dram_image = _read_only_image(self.dram_image)
        for name, t in self.tensors.items():
            if not isinstance(t, TensorRef):
                raise ProgramError(f"tensor {name!r} is not a TensorRef")
            if t.dtype not in DTYPES or t.addr < 0 or t.role not in ("input", "output"):
                raise ProgramError(f"tensor {name!r}: bad description {t}")

    @classmethod
    def from_asm(cls, text: str, dram_image: Optional[np.ndarray] = None, **kw) -> "Program":
        return cls(assemble(text), np.zeros(0, np.uint8) if dram_image is None else dram_image, **kw)

    def disassemble(self) -> str:
        return disassemble(self.words, numbered=True)

    def save(self, path: str | Path) -> None:
        meta = {"format": "accelsim-program", "version": FORMAT_VERSION, "meta": self.meta,
                "tensors": {k: {**asdict(v), "shape": list(v.shape)} for k, v in self.tensors.items()}}
        with open(path, "wb") as f:
            np.savez_compressed(f, words=self.words, dram=self.dram_image,
                                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))

    @classmethod
    def load(cls, path: str | Path) -> "Program":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"words", "dram", "meta"} - set(z.files)
                if missing:
                    raise ProgramError(f"{path}: not an accelsim program (missing {', '.join(sorted(missing))})")
                words, dram, raw = z["words"], z["dram"], z["meta"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ProgramError(f"{path}: not an accelsim program file ({e})") from None
        try:
            meta = json.loads(raw.tobytes().decode())
            if meta.get("format") != "accelsim-program" or meta.get("version") != FORMAT_VERSION:
                raise ProgramError(f"{path}: unsupported program format {meta.get('format')!r} "
                                   f"version {meta.get('version')!r}")
            tensors = {k: TensorRef(int(v["addr"]), tuple(int(s) for s in v["shape"]), v["dtype"], v["role"])
                       for k, v in meta["tensors"].items()}
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            if isinstance(e, ProgramError):
                raise
            raise ProgramError(f"{path}: corrupt program description ({e})") from None
        try:
            return cls(words, dram, tensors, meta.get("meta", {}))
        except ProgramError as e:
            raise ProgramError(f"{path}: {e}") from None
