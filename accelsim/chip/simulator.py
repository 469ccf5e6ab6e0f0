"""``Simulator(chip).run(program, inputs)``: values, cycles, traffic and energy from one program."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Mapping, Optional

import numpy as np

from isa import format_instruction
from kernels.state import ERR_MESSAGES, HOST_CALL

from . import counters as M
from .config import ChipConfig
from .counters import chip_vector
from .errors import SimError
from .execute import no_kept, run_values_profiled
from .lowering import Lowered, lower, merged_ranges
from .program import Program, ProgramError
from .report import RunReport
from .timing import run_timing


class Simulator:
    """Runs programs on one chip configuration."""

    CACHED = 16  # lowered programs kept

    def __init__(self, chip: Optional[ChipConfig] = None) -> None:
        self.chip = chip or ChipConfig()
        self._params = chip_vector(self.chip)
        self._lowered: OrderedDict[int, tuple[np.ndarray, Lowered]] = OrderedDict()
        self._timing_dram: Optional[tuple[int, np.ndarray, np.ndarray]] = None  # (program id, image, DRAM)
        self._value_dram: Optional[np.ndarray] = None  # reused by value runs: zero beyond _dirty
        self._dirty = 0
        self._last_writes: Optional[tuple] = None  # (image, byte ranges) the last value run may have written
        self._kept: OrderedDict[int, tuple] = OrderedDict()  # id(low) -> (low, image, tensors, store)

    def lower(self, program: Program) -> Lowered:
        """Validate and lower (cached per program object while its words are unchanged; the
        program keeps its lowering for this chip too, so other simulators of the same chip, in
        other threads, reuse it: a Lowered is only read while running)."""
        key = id(program)
        hit = self._lowered.get(key)
        if hit is not None and hit[0] is program.words:
            self._lowered.move_to_end(key)
            return hit[1]
        shared = getattr(program, "_lowered_for", None)
        if shared is not None and shared[0] is self.chip and shared[1] is program.words:
            low = shared[2]
        else:
            low = lower(program.words, self.chip, self.chip.dram_bytes())
            program._lowered_for = (self.chip, program.words, low)
        self._lowered[key] = (program.words, low)
        if len(self._lowered) > self.CACHED:
            self._lowered.popitem(last=False)
        return low

    def _earlier_fault(self, program: Program, dram: np.ndarray, refused: SimError) -> SimError:
        """Faults are reported in program order, as the golden semantics finds them: the
        instructions before one the validation refuses run, and a data-dependent fault among
        them (a malformed stream, a multiplier out of range) comes first."""
        if refused.index <= 0:
            return refused
        low = lower(program.words[:refused.index], self.chip, self.chip.dram_bytes())
        try:
            self._values(low, dram, np.zeros(low.total_words, np.int64), None, kept=no_kept())
        except SimError as e:
            return e
        return refused

    def _values(self, low: Lowered, dram: np.ndarray, mem: np.ndarray,
                host: Optional[Callable[[int, np.ndarray], None]], ticks: Optional[np.ndarray] = None,
                kept: Optional[tuple] = None) -> int:
        """The value loop, stopping at each HOST instruction for ``host(call, dram)``; returns the
        overflow count or raises SimError at the faulting instruction.  ``ticks`` (one per
        instruction) collects each instruction's host cycles (the profiled loop); ``kept`` is the
        store of packed weights kept across runs (``_kept_store``)."""
        start, overflows = 0, 0
        kept = no_kept() if kept is None else kept
        while True:
            if ticks is None:
                index, status, more = low.loop(low.rows, low.cfgs, low.wins, dram, mem, kept, start)
            else:
                index, status, more = run_values_profiled(low.rows, low.cfgs, low.wins, dram, mem, kept, start,
                                                          ticks)
            overflows += more
            if index < 0:
                return overflows
            text = format_instruction(low.instructions[index])
            if status != HOST_CALL:
                raise SimError(int(index), text, ERR_MESSAGES.get(int(status), f"fault {status}"))
            call = int(low.rows[index][3])
            if host is None:
                raise SimError(int(index), text, f"HOST call {call}: no host is attached to run it")
            host(call, dram)
            start = index + 1

    KEPT_BYTES = 256 << 20  # packed weights kept across runs, all programs together (at least the last)

    def _kept_store(self, program: Program, low: Lowered) -> tuple:
        """The store of packed weights kept for ``low`` on this program's DRAM image: (slots, bytes,
        sums, readers: low.readers), slots = low.kept's offsets and a state (0 empty, 1 filled, -1
        not kept: its source overlaps a tensor, which a run's inputs may change).  Made empty for a new image; the
        stores of the programs run least recently are dropped past CACHED programs or KEPT_BYTES.
        A writeable image (one assigned to the program after it was made) keeps nothing."""
        tensors = tuple((t.addr, t.addr + t.nbytes) for t in program.tensors.values())
        hit = self._kept.get(id(low))
        if hit is not None and hit[0] is low and hit[1] is program.dram_image and hit[2] == tensors:
            self._kept.move_to_end(id(low))
            return hit[3]
        table = low.kept
        state = np.full(len(table), 0 if not program.dram_image.flags.writeable else -1, np.int64)
        for lo, hi in tensors:
            state[(table[:, 4] < hi) & (lo < table[:, 5])] = -1
        end = table[-1] if len(table) else np.zeros(4, np.int64)
        store = (np.concatenate([table[:, :4], state[:, None]], axis=1),
                 np.empty(int(end[0] + end[1]), np.int8), np.zeros(int(end[2] + end[3]), np.int64), low.readers)
        self._kept[id(low)] = (low, program.dram_image, tensors, store)
        while len(self._kept) > self.CACHED or (
                len(self._kept) > 1 and sum(v[3][1].nbytes for v in self._kept.values()) > self.KEPT_BYTES):
            self._kept.popitem(last=False)
        return store

    def _dram_for_timing(self, program: Program, inputs: Optional[Mapping[str, np.ndarray]]) -> np.ndarray:
        """The DRAM a timing-only run reads (the timing model never writes it): the last one made
        for this program, with only the inputs written again, instead of a new DRAM image."""
        cached = self._timing_dram
        if cached is None or cached[0] != id(program) or cached[1] is not program.dram_image:
            dram = self._dram(program, inputs)
            self._timing_dram = (id(program), program.dram_image, dram)
            return dram
        self._write_inputs(program, cached[2], inputs)
        return cached[2]

    def _dram_for_values(self, program: Program, low: Lowered, inputs: Optional[Mapping[str, np.ndarray]]
                         ) -> np.ndarray:
        """A DRAM equal to a new one (the image, the inputs, zeros elsewhere), made by resetting the
        buffer of the previous value run: with the same (read-only) image, only the byte ranges that
        run may have written (its instructions' DRAM write spans and its tensors) are restored; else
        (or when the image is writeable: assigned to the program later, it may have changed) the
        image is copied again and the bytes past it any run may have written are zeroed.  After
        a program with a HOST step (which may write any byte) the next run takes a new DRAM."""
        size = self.chip.dram_bytes()
        image = program.dram_image
        if image.size > size:
            raise SimError(-1, "", f"DRAM image of {image.size} bytes exceeds the {size}-byte DRAM")
        dram, last = self._value_dram, self._last_writes
        if dram is None or dram.size != size:
            dram, self._dirty = np.zeros(size, np.uint8), 0
            self._value_dram = dram
            dram[:image.size] = image
        elif last is not None and last[0] is image and not image.flags.writeable:
            for lo, hi in last[1]:
                _restore(dram, image, lo, min(hi, size))
        else:
            if self._dirty > image.size:
                dram[image.size:self._dirty] = 0
            dram[:image.size] = image
        tensors = [(t.addr, t.addr + t.nbytes) for t in program.tensors.values()]
        self._dirty = min(size, max(image.size, low.dram_end, max((hi for _, hi in tensors), default=0)))
        self._last_writes = (image, merged_ranges(list(low.dram_writes) + tensors))
        if low.has_host:  # a host step may write any byte: the next run takes a new DRAM
            self._value_dram = None
        self._write_inputs(program, dram, inputs)
        return dram

    def _dram(self, program: Program, inputs: Optional[Mapping[str, np.ndarray]]) -> np.ndarray:
        size = self.chip.dram_bytes()
        if program.dram_image.size > size:
            raise SimError(-1, "", f"DRAM image of {program.dram_image.size} bytes exceeds the {size}-byte DRAM")
        dram = np.zeros(size, np.uint8)
        dram[:program.dram_image.size] = program.dram_image
        self._write_inputs(program, dram, inputs)
        return dram

    def _write_inputs(self, program: Program, dram: np.ndarray, inputs: Optional[Mapping[str, np.ndarray]]) -> None:
        size = dram.size
        for name, value in (inputs or {}).items():
            ref = program.tensors.get(name)
            if ref is None or ref.role != "input":
                known = ", ".join(k for k, t in program.tensors.items() if t.role == "input") or "none"
                raise SimError(-1, "", f"program has no input tensor {name!r} (inputs: {known})")
            if ref.addr + ref.nbytes > size:
                raise SimError(-1, "", f"input {name!r} at {ref.addr} runs past DRAM")
            try:
                ref.write(dram, value, name)
            except ProgramError as e:
                raise SimError(-1, "", str(e)) from None

    def run(self, program: Program, inputs: Optional[Mapping[str, np.ndarray]] = None, *,
            values: bool = True, segments: Optional[np.ndarray] = None,
            host: Optional[Callable[[int, np.ndarray], None]] = None,
            profile: bool = False) -> tuple[dict[str, np.ndarray], RunReport]:
        """Run ``program``; returns the output tensors (by name) and the report.

        ``values=False`` runs the timing model only (same program, no data computed).
        ``segments`` (one int per instruction, e.g. its layer) adds per-segment reports
        (``report.segments``) whose cycles add up to the total: a segment's cycles run from the
        end of the previous segment's last instruction to the end of its own.
        ``host(call, dram)`` runs the host step of each HOST instruction on the DRAM bytes.
        ``profile``: ``self.last_ticks`` gets each instruction's host cycles in the value loop.
        """
        try:
            low = self.lower(program)
        except SimError as e:
            raise self._earlier_fault(program, self._dram(program, inputs), e) from None
        dram = self._dram_for_values(program, low, inputs) if values else self._dram_for_timing(program, inputs)
        n = low.rows.shape[0]
        seg = np.zeros(n, np.int64) if segments is None else np.asarray(segments, np.int64)[:n]
        if seg.size != n or (n and seg.min() < 0):
            raise SimError(-1, "", f"segments must give a non-negative index for each of the {n} instructions")
        n_seg = int(seg.max()) + 1 if n else 1
        counters = np.zeros((n_seg, M.N_COUNTERS), np.float64)
        finish = np.zeros(n, np.float64)
        blocked = run_timing(low.rows, low.cfgs, low.wins, dram, self._params, counters, seg, finish)
        if blocked >= 0:
            raise SimError(int(blocked), format_instruction(low.instructions[blocked]),
                           "deadlock: it pops a dependency token that no instruction ever pushes")
        outputs: dict[str, np.ndarray] = {}
        if values:
            mem = np.zeros(low.total_words, np.int64)
            self.last_ticks = np.zeros(n, np.int64) if profile else None
            counters[0, M.C_OVERFLOWS] = self._values(low, dram, mem, host, self.last_ticks,
                                                      self._kept_store(program, low))
            outputs = {name: ref.read(dram) for name, ref in program.tensors.items() if ref.role == "output"}
            self.last_dram, self.last_mem = dram, mem
        report = RunReport.from_counters(counters.sum(axis=0), self.chip, values)
        if segments is not None:
            report.segments = self._segment_reports(counters, seg, finish, values)
        return outputs, report

    def _segment_reports(self, counters: np.ndarray, seg: np.ndarray, finish: np.ndarray,
                         values: bool) -> list[RunReport]:
        """One report per segment; a segment's cycles run from the end of the previous one to its own."""
        n_seg = counters.shape[0]
        ends = np.zeros(n_seg)
        np.maximum.at(ends, seg, finish)  # each segment's last finish (0 for an empty one)
        ends = np.maximum.accumulate(ends)
        rows = counters.copy()
        rows[:, M.C_CYCLES] = np.diff(ends, prepend=0.0)
        rows[:, M.C_INSTRUCTIONS] = np.bincount(seg, minlength=n_seg)
        rows[:, M.C_OVERFLOWS] = 0
        return [RunReport.from_counters(row, self.chip, values) for row in rows]


def _restore(dram: np.ndarray, image: np.ndarray, lo: int, hi: int) -> None:
    """dram[lo:hi] as a new DRAM holds it: the image's bytes, zeros past the image."""
    top = min(hi, image.size)
    if lo < top:
        dram[lo:top] = image[lo:top]
    if max(lo, image.size) < hi:
        dram[max(lo, image.size):hi] = 0
