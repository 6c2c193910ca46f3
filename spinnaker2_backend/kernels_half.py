"""binary16 rounding of received values, compiled (numba).

:func:`round_binary16` gives, bit for bit, what ``values.astype(np.float16).astype(np.float32)``
gives (IEEE 754 round to nearest, ties to even, subnormals included) without numpy's
software float16 conversion, which made the ``bitmap16`` receive path the largest cost of a
simulated step after the products (``tests/spinnaker2_backend/test_binary16_receive.py``
checks every binary16 value, the float32 values next to it and every midpoint between two
binary16 values).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["HALF_OVERFLOW", "round_binary16"]

#: The smallest magnitude that binary16 rounds to infinity (65504 plus half its last step).
HALF_OVERFLOW = 65520.0

_SMALLEST_NORMAL = 2.0**-14
_SUBNORMAL_STEP = 2.0**-24


@njit(cache=True, nogil=True)
def round_binary16(values, out):  # pragma: no cover - compiled
    """``out[i]`` = ``values[i]`` rounded to binary16 (both float32, 1-D, contiguous).

    Returns ``(nonzeros, largest)``: the number of non-zero results, and the largest
    magnitude of a value that binary16 cannot hold (>= :data:`HALF_OVERFLOW`, or NaN), else
    -1.0.
    """
    src = values.view(np.uint32)
    dst = out.view(np.uint32)
    nonzeros = 0
    largest = -1.0
    for i in range(values.shape[0]):
        v = values[i]
        if v == 0:  # most received values (silent units): +-0 stays +-0
            out[i] = v
            continue
        a = abs(v)
        if not a < HALF_OVERFLOW:  # beyond the range, or NaN
            largest = max(largest, a) if a == a else np.inf
            out[i] = v
        elif a < _SMALLEST_NORMAL:  # binary16 subnormals: multiples of 2^-24, ties to even
            out[i] = np.float32(np.rint(np.float64(v) / _SUBNORMAL_STEP) * _SUBNORMAL_STEP)
        else:  # keep 10 of the 23 fraction bits, ties to even (a carry moves the exponent)
            bits = src[i]
            dst[i] = (bits + np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & (
                np.uint32(0xFFFFE000)
            )
        if out[i] != 0:
            nonzeros += 1
    return nonzeros, largest
