"""Keep large training buffers mapped between steps (glibc's ``mallopt``).

One training step of the LM allocates its logits ``(T, B, V)`` and their gradient afresh
(the demo's small preset: 32 x 35 x 10,000 float32 = 45 MB each). glibc's ``malloc`` serves
any request above its mmap threshold with a fresh ``mmap`` and returns it with ``munmap`` on
``free``, so every step page-faults those buffers in again (zero-filled 4 KiB pages): about a
fifth of the demo's training CPU time. The threshold cannot be raised above 32 MiB
(``HEAP_MAX_SIZE / 2``: glibc refuses larger values), so :func:`keep_buffers_mapped` turns
``mmap`` off for ``malloc`` instead (``M_MMAP_MAX = 0``: every block comes from the heap)
and raises the trim threshold (``M_TRIM_THRESHOLD``) so a freed block stays in the heap for
the next step. The process keeps its peak heap (it does not hand freed memory back to the
system while it runs), which a training process reaches on its first step anyway.

Only the allocator's policy changes, never a value: losses are bit-identical. On a C
library other than glibc (macOS, musl, Windows) it does nothing. ``SNN_EGRU_MALLOPT=0`` in
the environment turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

logger = logging.getLogger(__name__)

__all__ = ["keep_buffers_mapped", "restore_malloc_defaults"]

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
#: glibc's defaults (mallopt turns the dynamic thresholds off once set).
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_THRESHOLD = 128 * 1024
#: Trim threshold while training: freed heap memory below this stays mapped.
TRIM_THRESHOLD = 1 << 30

_applied = False


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def keep_buffers_mapped() -> bool:
    """Set glibc's ``malloc`` so large freed buffers are reused, not unmapped (see the
    module docstring). Returns whether the allocator was set (``False`` off glibc or with
    ``SNN_EGRU_MALLOPT=0``). Idempotent; process-wide."""
    global _applied
    if _applied:
        return True
    if os.environ.get("SNN_EGRU_MALLOPT", "1") == "0":
        return False
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _applied = ok
    logger.debug("glibc mallopt: mmap off, trim threshold %d: %s", TRIM_THRESHOLD, ok)
    return ok


def restore_malloc_defaults() -> bool:
    """Put glibc's ``malloc`` back to its default policy (benchmarks compare both in one
    process; the dynamic mmap threshold stays off, fixed at its initial 128 KiB)."""
    global _applied
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX) == 1
    ok = libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD) == 1 and ok
    ok = libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD) == 1 and ok
    libc.malloc_trim(0)
    _applied = False
    return ok
