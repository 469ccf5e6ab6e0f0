"""Which ONNX broadcasts of a second operand the vector unit takes, and where each element of it
lives: element ``e`` of ``a`` (in DRAM order) meets element ``b_index(e)`` of ``b``.

In DRAM order (NHWC for a 4-D tensor) an operand that broadcasts over leading dims and matches
the trailing ones repeats with a period: a squeeze-excite scale (N, C, 1, 1) against (N, C, H, W)
has period C and its own values per image, a per-channel constant (1, C, 1, 1) period C shared by
every image, a scalar period 1, a (1, C, H, W) constant one image's worth.  Other broadcasts (a
(1, 1, H, W) map against (N, C, H, W), whose NHWC copies repeat each element C times) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import memory_dims


@dataclass(frozen=True)
class Broadcast:
    """b's element for a's element e: ``(e // image) * period * per_image + e % period``."""

    image: int       # elements of a per image
    period: int      # b repeats every ``period`` elements of a (a divisor of ``image``)
    per_image: bool  # b holds other values for each image (else one set for all)

    @property
    def same(self) -> bool:
        """b has a's shape."""
        return self.per_image and self.period == self.image

    def b_index(self, e: int) -> int:
        return (e // self.image) * self.period * int(self.per_image) + e % self.period


def broadcast_of(a_shape: tuple, b_shape: tuple, rowmajor: bool = False) -> Broadcast:
    """The broadcast of ``b_shape`` against ``a_shape`` (ONNX: dims aligned on the right, each 1
    or equal); ValueError naming the shapes when the vector unit cannot take it."""
    rank = len(a_shape)
    if len(b_shape) > rank:
        raise ValueError(f"{tuple(b_shape)} has more dims than {tuple(a_shape)}")
    bs = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    if any(d not in (1, a) for d, a in zip(bs, a_shape)):
        raise ValueError(f"{tuple(b_shape)} does not broadcast to {tuple(a_shape)}")
    am = tuple(a_shape) if rowmajor or rank != 4 else memory_dims(tuple(a_shape))
    bm = bs if rowmajor or rank != 4 else memory_dims(bs)
    image = int(np.prod(am[1:], dtype=np.int64)) if rank > 1 else 1
    inner_a, inner_b = am[1:], bm[1:]
    for j in range(len(inner_a) + 1):
        if all(d == 1 for d in inner_b[:j]) and tuple(inner_b[j:]) == tuple(inner_a[j:]):
            period = int(np.prod(inner_a[j:], dtype=np.int64))
            return Broadcast(image, period, bool(rank) and bm[0] == am[0] and (am[0] > 1 or period == image))
    raise ValueError(f"{tuple(b_shape)} against {tuple(a_shape)} repeats elements in DRAM order "
                     "(only channel-wise, per-image or scalar operands are taken)")
