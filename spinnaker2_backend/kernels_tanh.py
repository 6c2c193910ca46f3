"""numpy's own ``tanh`` loop called from compiled code (numba): :func:`numpy_tanh_loop`,
:func:`call_unary_loop`.

The layer step's point-wise update needs numpy's float ``tanh`` bit for bit: numpy's SIMD
loop rounds differently from libm's ``tanhf`` (which numba calls) for a large share of
inputs. Rather than reimplement it, the compiled step calls numpy's loop itself: the
function numpy registered for ``np.tanh`` and the dtype (``PyUFuncObject.functions``,
the same machine code ``np.tanh(x, out=y)`` runs on a contiguous array, once over all of
it). :func:`numpy_tanh_loop` reads its address from the ufunc object and checks what it
read (the ufunc's name, its arity, its loop types against ``np.tanh.types``); anything
unexpected gives 0, and the caller keeps ``np.tanh`` in Python. The tests compare the
compiled call with ``np.tanh`` bit for bit.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["call_unary_loop", "numpy_tanh_loop"]

# the leading fields of numpy 1.x's PyUFuncObject (64-bit): PyObject_HEAD,
# int nin, nout, nargs, identity, then the loop functions, their data, the loop count,
# a reserved int, the name and the loop types
_NIN, _NOUT, _NARGS, _FUNCTIONS, _DATA, _NTYPES, _NAME, _TYPES = 16, 20, 24, 32, 40, 48, 56, 64


@functools.cache
def numpy_tanh_loop(dtype) -> int:
    """The address of numpy's ``tanh`` inner loop for ``dtype`` (float32 or float64): the
    first registered loop of that type, as numpy's type resolution picks it; 0 when the
    ufunc object does not read as expected (then ``np.tanh`` stays in Python)."""
    dtype = np.dtype(dtype)
    if ctypes.sizeof(ctypes.c_void_p) != 8 or not np.__version__.startswith("1."):
        return 0  # the layout below is numpy 1.x's (the project pins numpy < 2)
    ufunc = np.tanh
    base = id(ufunc)

    def field(kind, offset):
        return kind.from_address(base + offset).value

    ntypes = len(ufunc.types)
    if (field(ctypes.c_int, _NIN), field(ctypes.c_int, _NOUT), field(ctypes.c_int, _NARGS)) != (
        1,
        1,
        2,
    ) or field(ctypes.c_int, _NTYPES) != ntypes:
        return 0
    if ctypes.string_at(field(ctypes.c_void_p, _NAME)) != b"tanh":
        return 0
    codes = ctypes.string_at(field(ctypes.c_void_p, _TYPES), 2 * ntypes)
    want = [np.dtype(t[0]).num for t in ufunc.types]
    if [codes[2 * k] for k in range(ntypes)] != want:
        return 0
    for k in range(ntypes):
        if codes[2 * k] == codes[2 * k + 1] == dtype.num:
            functions, data = field(ctypes.c_void_p, _FUNCTIONS), field(ctypes.c_void_p, _DATA)
            address = ctypes.c_void_p.from_address(functions + 8 * k).value or 0
            # a loop that needs its data pointer (a generic wrapper of a C function) is
            # not numpy's own loop: keep np.tanh
            return address if not ctypes.c_void_p.from_address(data + 8 * k).value else 0
    return 0


@intrinsic
def call_unary_loop(typingctx, address, src, dst):  # pragma: no cover - compiled
    """Call the numpy inner loop at ``address`` (``void loop(char **args, npy_intp
    *dimensions, npy_intp *steps, void *data)``) over contiguous 1-D ``src`` into ``dst``
    (same length and dtype): one call over every element, as numpy makes it."""

    def codegen(context, builder, signature, args):
        addr, src_value, dst_value = args
        src_array = context.make_array(signature.args[1])(context, builder, src_value)
        dst_array = context.make_array(signature.args[2])(context, builder, dst_value)
        byte_ptr = ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        one = ir.Constant(ir.IntType(32), 1)
        argv = cgutils.alloca_once(builder, byte_ptr, size=2)
        builder.store(builder.bitcast(src_array.data, byte_ptr), argv)
        builder.store(builder.bitcast(dst_array.data, byte_ptr), builder.gep(argv, [one]))
        dims = cgutils.alloca_once(builder, intp, size=1)
        builder.store(builder.extract_value(src_array.shape, 0), dims)
        steps = cgutils.alloca_once(builder, intp, size=2)
        itemsize = context.get_constant(types.intp, signature.args[1].dtype.bitwidth // 8)
        builder.store(itemsize, steps)
        builder.store(itemsize, builder.gep(steps, [one]))
        loop_type = ir.FunctionType(
            ir.VoidType(), [byte_ptr.as_pointer(), intp.as_pointer(), intp.as_pointer(), byte_ptr]
        )
        loop = builder.inttoptr(addr, loop_type.as_pointer())
        builder.call(loop, [argv, dims, steps, ir.Constant(byte_ptr, None)])
        return context.get_dummy_value()

    return types.void(address, src, dst), codegen
