"""Numba JIT kernels, one per instruction, bit-exact twins of isa.semantics (see issue #3)."""
