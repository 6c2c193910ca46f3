"""The compiled time loop of one EGRU layer (C++ forward and backward, CPU).

:class:`snn_egru.sequence.EGRUSequence` runs each layer's time loop here when it can, and in
the Python loop of :mod:`snn_egru.functional` otherwise. The C++ source
(``snn_egru/_fastloop.cpp``) computes the same step and the same hand-written backward as
:class:`~snn_egru.functional.EGRULayerLoop` but without one Python call and one operator
dispatch per operation and step: at small sizes (64 -> 128 units, batch 1) that overhead is
most of the time of the Python loop, and ``nn.GRU`` has none of it.

Build: on first use, with the C++ compiler (``$CXX`` or ``c++``) against the installed torch
headers and libraries (only ATen's per-operator headers: a few seconds). The library is
cached in ``$SNN_EGRU_CACHE_DIR`` (default ``$XDG_CACHE_HOME/snn_egru``, i.e.
``~/.cache/snn_egru``) under a name that hashes the source, the torch version, the compiler
and the flags, so that a change of any of them builds anew and concurrent processes never
load a half-written file. ``python -m snn_egru._fastloop`` builds it ahead of time and says
where it is.

When the compiled loop is used (everything else falls back to the Python loop, explicitly,
see :func:`unsupported_reason`): CPU tensors of float32 or float64; the spike function is the
EGRU triangle (:func:`~snn_egru.functional.triangle`) or
:func:`~snn_egru.functional.heaviside_no_grad`; with gradients only when the module trains
with its fused backward (``fused_backward=True``, the default). DropConnect (a different
``weight_hh``), zoneout (training masks and evaluation mixing), dropout between layers and
learnable thresholds (either parametrisation) are all supported. Double backward is not
(as with the fused Python loop): use ``fused_backward=False``.

Environment: ``SNN_EGRU_COMPILED_LOOP=0`` switches the compiled loop off (no build is
attempted); ``=1`` (default) uses it when it builds, and logs one warning with the
compiler's message when it does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from snn_egru.functional import (
    EGRUCellState,
    SpikeFn,
    TriangleSurrogate,
    heaviside_no_grad,
    recurrent_parameter_grads,
)

__all__ = [
    "ENV_SWITCH",
    "CompiledLayerLoop",
    "CompiledLoopUnavailable",
    "available",
    "build",
    "cache_dir",
    "enabled",
    "layer_infer_op",
    "layer_loop_backward_op",
    "layer_loop_op",
    "library_path",
    "load",
    "run_layer",
    "unsupported_reason",
    "use_compiled_loop",
]

logger = logging.getLogger(__name__)

#: Environment variable: ``0`` switches the compiled loop off.
ENV_SWITCH = "SNN_EGRU_COMPILED_LOOP"
#: Environment variable overriding the cache directory of the built library.
ENV_CACHE = "SNN_EGRU_CACHE_DIR"

SOURCE = Path(__file__).with_suffix(".cpp")
_OPS_NAMESPACE = "snn_egru_fastloop"
# -ffp-contract=off: no fused multiply-adds, every product and sum rounded as PyTorch's
# separate operations round them; vectorising the loops does not change any result.
_CXX_FLAGS = ("-O3", "-std=c++20", "-fPIC", "-shared", "-w", "-ffp-contract=off")
# The library is built where it runs, for its CPU (measured: the point-wise loops 2.5x
# faster with AVX-512 than with the x86-64 baseline); the CPU is part of the cache key, and
# a compiler that refuses the flag builds without it.
_NATIVE_FLAGS = ("-march=native",)

#: ``recurrent`` argument of the C++ forward.
_DENSE, _EVENTS = 0, 1
#: ``surrogate`` argument of the C++ backward.
_SURROGATE_NONE, _SURROGATE_TRIANGLE, _SURROGATE_TRIANGLE_CLAMPED = 0, 1, 2
#: Same rule as :func:`~snn_egru.functional.event_driven_recurrent`.
_MAX_ACTIVE_FRACTION = 0.5
#: Up to this batch size the recurrent product is always the sum of the fan-out rows of the
#: active units (exact: the skipped terms are zeros), cheaper than one BLAS call per step.
ROW_SUM_MAX_BATCH = 4

_lock = threading.Lock()
_state: dict[str, Any] = {"ops": None, "error": None}
_override: list[bool] = []


class CompiledLoopUnavailable(RuntimeError):
    """The compiled loop could not be built or loaded (the message says why)."""


def enabled() -> bool:
    """Whether the compiled loop may be used: :func:`use_compiled_loop`, else the
    ``SNN_EGRU_COMPILED_LOOP`` environment variable (default: yes)."""
    if _override:
        return _override[-1]
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


@contextlib.contextmanager
def use_compiled_loop(flag: bool) -> Iterator[None]:
    """Within the block, use the compiled loop (when it builds) or never (``False``).

    For comparisons and debugging: ``with use_compiled_loop(False): seq(x)`` runs the
    Python loop of :mod:`snn_egru.functional`. Not thread-local.
    """
    _override.append(bool(flag))
    try:
        yield
    finally:
        _override.pop()


def cache_dir() -> Path:
    """Directory holding the built library."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "snn_egru"


def _compiler() -> str:
    return os.environ.get("CXX") or "c++"


def _cpu_id() -> str:
    """The CPU model and feature flags (what -march=native compiles for)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    fields = {line.split(":")[0].strip(): line for line in lines if ":" in line}
    return "\n".join(fields[key] for key in wanted if key in fields) or platform.machine()


def _compile_command(output: Path, *, native: bool = True) -> list[str]:
    # The paths torch.utils.cpp_extension would use, without importing it (it probes CUDA).
    torch_dir = Path(torch.__file__).resolve().parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    lib_dir = torch_dir / "lib"
    return [
        _compiler(),
        *_CXX_FLAGS,
        *(_NATIVE_FLAGS if native else ()),
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-I{torch_dir / 'include'}",
        str(SOURCE),
        "-o",
        str(output),
        f"-L{lib_dir}",
        f"-Wl,-rpath,{lib_dir}",
        "-lc10",
        "-ltorch_cpu",
    ]


def library_path() -> Path:
    """Where the library for this source, torch, compiler and flags is (or will be) cached."""
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(sys.version.encode())
    compiler = shutil.which(_compiler()) or _compiler()
    digest.update(compiler.encode())
    digest.update(" ".join(_compile_command(Path("out.so"))).encode())
    digest.update(_cpu_id().encode())
    return cache_dir() / f"fastloop-{digest.hexdigest()[:20]}.so"


def build(force: bool = False) -> Path:
    """Compile the library into the cache (unless it is there already); its path.

    Raises:
        CompiledLoopUnavailable: no compiler, or the compiler failed (with its message).
    """
    target = library_path()
    if target.exists() and not force:
        return target
    if shutil.which(_compiler()) is None:
        raise CompiledLoopUnavailable(
            f"no C++ compiler {_compiler()!r} on PATH (install g++ or set CXX)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp.so", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    logger.info("building the compiled EGRU time loop (once) into %s", target)
    try:
        for native in (True, False):
            result = subprocess.run(
                _compile_command(tmp, native=native),
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if result.returncode == 0:
                break
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise CompiledLoopUnavailable(
                f"{_compiler()} failed (exit {result.returncode}) building {SOURCE.name}:\n{tail}"
            )
        os.replace(tmp, target)  # atomic: other processes see the old name or the whole file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def load() -> Any:
    """The compiled ops (``torch.ops.snn_egru_fastloop``), building them on first use.

    Raises:
        CompiledLoopUnavailable: switched off by ``SNN_EGRU_COMPILED_LOOP=0``, or the build
            or load failed (the error is remembered: one attempt per process).
    """
    if not enabled():
        raise CompiledLoopUnavailable(f"switched off ({ENV_SWITCH}=0 or use_compiled_loop(False))")
    return _loaded_ops()


def _loaded_ops() -> Any:
    """:func:`load` without the switch (a backward pass finishes what its forward began)."""
    if _state["ops"] is not None:
        return _state["ops"]
    with _lock:
        if _state["ops"] is not None:
            return _state["ops"]
        if _state["error"] is not None:
            raise CompiledLoopUnavailable(_state["error"])
        try:
            path = build()
            torch.ops.load_library(str(path))
            ops = getattr(torch.ops, _OPS_NAMESPACE)
            ops.layer_forward  # noqa: B018  (fails here if the library registered nothing)
        except (CompiledLoopUnavailable, OSError, RuntimeError, AttributeError) as error:
            _state["error"] = str(error)
            logger.warning(
                "compiled EGRU time loop unavailable, using the Python loop (slower at small "
                "sizes): %s",
                error,
            )
            raise CompiledLoopUnavailable(str(error)) from error
        _state["ops"] = ops
        return ops


def available() -> bool:
    """Whether the compiled loop can be used in this process (builds it on first call)."""
    try:
        load()
    except CompiledLoopUnavailable:
        return False
    return True


def _surrogate(spike_fn: SpikeFn) -> tuple[int, float, float] | None:
    if isinstance(spike_fn, TriangleSurrogate):
        clamped = spike_fn.amplitude == "clamped"
        kind = _SURROGATE_TRIANGLE_CLAMPED if clamped else _SURROGATE_TRIANGLE
        return kind, float(spike_fn.dampening), float(spike_fn.support)
    if spike_fn is heaviside_no_grad:
        return _SURROGATE_NONE, 0.0, 0.0
    return None


def unsupported_reason(
    gi: Tensor, spike_fn: SpikeFn, *, needs_grad: bool, fused_backward: bool
) -> str | None:
    """Why the compiled loop cannot run this layer (``None``: it can).

    Checked without building; :func:`run_layer` also needs :func:`available`.
    """
    if not enabled():
        return f"switched off ({ENV_SWITCH}=0 or use_compiled_loop(False))"
    if gi.device.type != "cpu":
        return f"compiled for CPU only (tensors on {gi.device})"
    if gi.dtype not in (torch.float32, torch.float64):
        return f"compiled for float32 and float64 only (dtype {gi.dtype})"
    if gi.shape[0] == 0:
        return "empty sequence"
    if needs_grad and not fused_backward:
        return "fused_backward=False asks for the step-by-step autograd graph"
    if _surrogate(spike_fn) is None:
        return (
            f"spike function {spike_fn!r} has no compiled surrogate "
            "(compiled: triangle(), heaviside_no_grad)"
        )
    return None


# ----------------------------------------------------------------- torch.library custom ops
# The C++ functions are registered as custom operators (``torch.ops.snn_egru.*``) with a fake
# kernel (shapes only: what torch.compile traces with, without running or even building the
# C++ code) and an autograd registration (the hand-written backward, itself a custom op), so
# that ``torch.compile(model, fullgraph=True)`` traces an EGRUSequence as one graph with one
# opaque node per layer. Eager calls skip the custom-op dispatch (measured: +25 us per call,
# 7 % of a 50-step, 128-unit layer at batch 1) and call the same functions directly
# (:class:`CompiledLayerLoop` for training).
_OP = "snn_egru"


def _loop_forward(
    gi: Tensor,
    y0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor,
    threshold: Tensor,
    keep_mask: Tensor | None,
    zoneout_eval: float,
    recurrent: int,
    surrogate: int,
    dampening: float,
    support: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Training forward of one layer: ``(ys, c_T)`` and the four tensors its backward reads
    (``gates``, ``gh_n``, ``c_prev``, ``c_tilde``). ``surrogate``/``dampening``/``support``
    are used by the backward only."""
    ys, c_last, gates, gh_n, c_prev, c_tilde = _loaded_ops().layer_forward(
        gi.contiguous(),
        y0.contiguous(),
        c0.contiguous(),
        weight_hh.contiguous(),
        None,
        bias_hh.contiguous(),
        threshold.contiguous(),
        keep_mask,
        zoneout_eval,
        recurrent,
        1.0 if recurrent == _EVENTS else _MAX_ACTIVE_FRACTION,
        True,
    )
    return ys, c_last, gates, gh_n, c_prev, c_tilde


def _loop_backward(
    grad_ys: Tensor,
    grad_c: Tensor,
    weight_hh: Tensor,
    threshold: Tensor,
    gates: Tensor,
    gh_n: Tensor,
    c_prev: Tensor,
    c_tilde: Tensor,
    keep_mask: Tensor | None,
    zoneout_eval: float,
    surrogate: int,
    dampening: float,
    support: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Backward of :func:`_loop_forward`: ``d_gi``, ``d_gh`` (pre-activation gradients of the
    recurrent product), ``d_y0``, ``d_c0``, ``d_threshold``."""
    d_gi, d_gh, dy0, dc0, d_theta = _loaded_ops().layer_backward(
        grad_ys.contiguous(),
        grad_c.contiguous(),
        weight_hh.contiguous(),
        threshold.contiguous(),
        gates,
        gh_n,
        c_prev,
        c_tilde,
        keep_mask,
        zoneout_eval,
        surrogate,
        dampening,
        support,
    )
    return d_gi, d_gh, dy0, dc0, d_theta


def _loop_infer(
    gi: Tensor,
    y0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    weight_hh_t: Tensor | None,
    bias_hh: Tensor,
    threshold: Tensor,
    keep_mask: Tensor | None,
    zoneout_eval: float,
    recurrent: int,
    max_active: float,
) -> tuple[Tensor, Tensor]:
    """Inference forward of one layer (no gradients, nothing saved): ``(ys, c_T)``."""
    ys, c_last = _loaded_ops().layer_forward(
        gi.contiguous(),
        y0.contiguous(),
        c0.contiguous(),
        weight_hh.contiguous(),
        weight_hh_t,
        bias_hh.contiguous(),
        threshold.contiguous(),
        keep_mask,
        zoneout_eval,
        recurrent,
        max_active,
        False,
    )
    return ys, c_last


#: ``torch.ops.snn_egru.layer_loop``: :func:`_loop_forward` as a custom op.
layer_loop_op = torch.library.custom_op(f"{_OP}::layer_loop", mutates_args=())(_loop_forward)
#: ``torch.ops.snn_egru.layer_loop_backward``: :func:`_loop_backward` as a custom op.
layer_loop_backward_op = torch.library.custom_op(f"{_OP}::layer_loop_backward", mutates_args=())(
    _loop_backward
)
#: ``torch.ops.snn_egru.layer_infer``: :func:`_loop_infer` as a custom op.
layer_infer_op = torch.library.custom_op(f"{_OP}::layer_infer", mutates_args=())(_loop_infer)


@layer_loop_op.register_fake
def _layer_loop_fake(gi, y0, c0, weight_hh, bias_hh, threshold, keep_mask, *_args):
    steps, batch, gates_n = gi.shape
    hidden = c0.shape[-1]
    seq = gi.new_empty(steps, batch, hidden)
    return (
        seq,
        c0.new_empty(batch, hidden),
        gi.new_empty(steps, batch, gates_n),
        torch.empty_like(seq),
        torch.empty_like(seq),
        torch.empty_like(seq),
    )


@layer_loop_backward_op.register_fake
def _layer_loop_backward_fake(grad_ys, grad_c, weight_hh, threshold, gates, *_args):
    return (
        torch.empty_like(gates),
        torch.empty_like(gates),
        torch.empty_like(grad_c),
        torch.empty_like(grad_c),
        torch.empty_like(threshold),
    )


@layer_infer_op.register_fake
def _layer_infer_fake(gi, y0, c0, *_args):
    steps, batch, _ = gi.shape
    return gi.new_empty(steps, batch, c0.shape[-1]), c0.new_empty(c0.shape)


def _setup_context(ctx, inputs, output) -> None:
    _gi, y0, _c0, weight_hh, _b, threshold, keep_mask, zoneout_eval, _rec, *surrogate = inputs
    ys, _c_last, gates, gh_n, c_prev, c_tilde = output
    ctx.save_for_backward(y0, weight_hh, threshold, gates, gh_n, c_prev, c_tilde, ys, keep_mask)
    ctx.options = (zoneout_eval, *surrogate)


def _input_grads(ctx, grad_ys: Tensor | None, grad_c_last: Tensor | None, backward_fn) -> tuple:
    """The 12 input gradients of the layer loop (``None`` for the non-tensor inputs)."""
    y0, weight_hh, threshold, gates, gh_n, c_prev, c_tilde, ys, keep_mask = ctx.saved_tensors
    grad_ys = torch.zeros_like(ys) if grad_ys is None else grad_ys
    grad_c = torch.zeros_like(y0) if grad_c_last is None else grad_c_last
    d_gi, d_gh, dy0, dc0, d_theta = backward_fn(
        grad_ys, grad_c, weight_hh, threshold, gates, gh_n, c_prev, c_tilde, keep_mask,
        *ctx.options,
    )  # fmt: skip
    need = ctx.needs_input_grad
    d_weight, d_bias = recurrent_parameter_grads(need, d_gh, y0, ys)
    grads = (d_gi, dy0, dc0, d_weight, d_bias, d_theta)
    return (*(g if n else None for g, n in zip(grads, need)), *(None,) * 6)


def _op_backward(ctx, grad_ys, grad_c_last, *_grads_of_saved):
    return _input_grads(ctx, grad_ys, grad_c_last, layer_loop_backward_op)


layer_loop_op.register_autograd(_op_backward, setup_context=_setup_context)


class CompiledLayerLoop(torch.autograd.Function):
    """Eager twin of ``torch.ops.snn_egru.layer_loop``: same inputs, returns ``(ys, c_T)``,
    same backward, without the custom-op dispatch."""

    @staticmethod
    def forward(ctx, *inputs):  # type: ignore[override]
        output = _loop_forward(*inputs)
        _setup_context(ctx, inputs, output)
        return output[0], output[1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_ys: Tensor | None, grad_c_last: Tensor | None):  # type: ignore[override]
        return _input_grads(ctx, grad_ys, grad_c_last, _loop_backward)


@torch.compiler.assume_constant_result
def _usable() -> bool:
    """Switched on and built (decided once when torch.compile traces: a constant there)."""
    return enabled() and available()


def run_layer(
    gi: Tensor,
    state: EGRUCellState,
    weight_hh: Tensor,
    bias_hh: Tensor,
    threshold: Tensor,
    *,
    spike_fn: SpikeFn,
    keep_mask: Tensor | None,
    zoneout_eval: float,
    recurrent_t: Tensor | None,
    needs_grad: bool,
    fused_backward: bool,
) -> tuple[Tensor, EGRUCellState] | None:
    """One layer's time loop in C++, or ``None`` when it must run in Python.

    Arguments as :meth:`snn_egru.sequence.EGRUSequence._run_layer`: ``gi`` ``(T, B, 3H)``
    input projections, ``state`` ``(y, c)`` each ``(B, H)``, ``recurrent_t`` (contiguous
    ``weight_hh.T``) switches on the event-driven recurrent product (inference only).

    Returns:
        ``(ys, (y_T, c_T))`` or ``None`` (see :func:`unsupported_reason`; the reason is
        logged at debug level).
    """
    compiling = torch.compiler.is_compiling()
    reason = unsupported_reason(gi, spike_fn, needs_grad=needs_grad, fused_backward=fused_backward)
    if reason is None and not _usable():
        reason = f"not built: {_state['error']}"
    if reason is not None:
        if not compiling:
            logger.debug("EGRU layer runs in the Python loop: %s", reason)
        return None
    surrogate = _surrogate(spike_fn)
    assert surrogate is not None
    y0, c0 = state
    if keep_mask is not None:
        keep_mask = keep_mask.contiguous()
    steps, batch = gi.shape[0], gi.shape[1]
    if recurrent_t is not None:
        recurrent, max_active = _EVENTS, _MAX_ACTIVE_FRACTION
    elif batch <= ROW_SUM_MAX_BATCH and steps > 1:
        recurrent, max_active = _EVENTS, 1.0  # rows of active units, never the BLAS call
    else:
        recurrent, max_active = _DENSE, _MAX_ACTIVE_FRACTION
    if needs_grad:
        inputs = (gi, y0, c0, weight_hh, bias_hh, threshold, keep_mask, float(zoneout_eval))
        if compiling:
            ys, c_last, *_saved = layer_loop_op(*inputs, recurrent, *surrogate)
        else:
            ys, c_last = CompiledLayerLoop.apply(*inputs, recurrent, *surrogate)
    else:
        infer = layer_infer_op if compiling else _loop_infer
        with torch.no_grad():
            ys, c_last = infer(
                gi, y0, c0, weight_hh, recurrent_t, bias_hh, threshold, keep_mask,
                float(zoneout_eval), recurrent, max_active,
            )  # fmt: skip
    return ys, EGRUCellState(y=ys[-1], c=c_last)


def _main() -> int:
    """``python -m snn_egru._fastloop``: build the library now and say where it is."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not enabled():
        print(f"compiled EGRU time loop switched off by {ENV_SWITCH}=0")
        return 1
    try:
        load()
    except CompiledLoopUnavailable as error:
        print(f"compiled EGRU time loop unavailable: {error}", file=sys.stderr)
        return 1
    print(f"compiled EGRU time loop ready: {library_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
