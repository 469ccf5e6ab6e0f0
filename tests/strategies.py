"""Hypothesis strategies derived from the instruction table."""

from __future__ import annotations

from hypothesis import strategies as st

from isa import Instruction
from isa.table import OPS, TOKEN_NAMES, Op


def field_values(op: Op) -> st.SearchStrategy[dict]:
    parts = {}
    for f in op.fields:
        if f.kind == "e":
            parts[f.name] = st.sampled_from([o for o in f.options if o is not None])
        else:
            parts[f.name] = st.one_of(st.integers(f.min, f.max), st.sampled_from([f.min, f.max]))
    for t in TOKEN_NAMES:
        parts[t] = st.integers(0, 1)
    return st.fixed_dictionaries(parts)


@st.composite
def instructions(draw, ops=OPS) -> Instruction:
    """A random valid instruction: random fields, retried until the cross-field rules hold."""
    op = draw(st.sampled_from(ops))
    for _ in range(50):
        values = draw(field_values(op))
        if all(check(values) is None for check in op.checks):
            return Instruction(op.mnemonic, **values)
    # Rules failed repeatedly (e.g. tokens on an edge unit): clear the tokens and zero points.
    values = {**values, **{t: 0 for t in TOKEN_NAMES}}
    for f in op.fields:
        if f.name.endswith("_zp"):
            values[f.name] = 0
    if "clamp_min" in values:
        values["clamp_min"], values["clamp_max"] = sorted((values["clamp_min"], values["clamp_max"]))
    if op.mnemonic == "LOADW" and values["format"] == "codebook":
        values["param"] = 1
    return Instruction(op.mnemonic, **values)
