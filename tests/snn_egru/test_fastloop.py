"""The compiled (C++) EGRU time loop equals the Python loops it replaces, or is not used."""

from __future__ import annotations

import shutil

import pytest
import torch
from snntorch import surrogate

from snn_egru import _fastloop
from snn_egru.functional import (
    EGRUCellState,
    egru_layer_loop,
    heaviside_no_grad,
    triangle,
)
from tests.snn_egru.conftest import make_sequence

DT = torch.float64


@pytest.fixture(scope="module")
def ops():
    """The compiled ops: skipped without a C++ compiler, a failure if one is there."""
    if not _fastloop.enabled():
        pytest.skip(f"compiled loop switched off by {_fastloop.ENV_SWITCH}")
    if shutil.which(_fastloop._compiler()) is None:
        pytest.skip("no C++ compiler: the compiled loop cannot be built here")
    return _fastloop.load()  # raises CompiledLoopUnavailable with the compiler's message


@pytest.fixture
def spy(monkeypatch):
    """Records, per layer run, whether the compiled loop ran and how it was called."""
    calls: list[dict] = []
    original = _fastloop.run_layer

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(
            {
                "compiled": result is not None,
                "events": kwargs["recurrent_t"] is not None,
                "grad": kwargs["needs_grad"],
            }
        )
        return result

    monkeypatch.setattr(_fastloop, "run_layer", recording)
    return calls


def random_loop_inputs(steps: int, batch: int, hidden: int, seed: int, scale: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(steps, batch, 3 * hidden, generator=g, dtype=DT) * scale,
        torch.rand(batch, hidden, generator=g, dtype=DT) * 0.5,
        torch.rand(batch, hidden, generator=g, dtype=DT) * 0.5,
        torch.randn(3 * hidden, hidden, generator=g, dtype=DT) * 0.5,
        torch.randn(3 * hidden, generator=g, dtype=DT) * 0.5,
        torch.rand(hidden, generator=g, dtype=DT) * 0.4 + 0.05,
    ]


TRAINING_OPTIONS = [
    {},
    {"zoneout": 0.3, "dropconnect": 0.2, "dropout": 0.25},
    {"threshold_init": "sigmoid", "dampening": 3.6, "support": 3.6},
    {"learn_threshold": False, "zoneout": 0.6},
    {"spike_grad": heaviside_no_grad},
    {"event_amplitude": "clamped", "zoneout": 0.3, "dropconnect": 0.2},
]


@pytest.mark.parametrize("options", TRAINING_OPTIONS)
@pytest.mark.parametrize("batch", [1, 6])  # row sums (batch <= 4) and the BLAS product
def test_compiled_training_equals_step_by_step_autograd(ops, spy, options, batch) -> None:
    """Outputs and every gradient of the compiled path == the step-by-step autograd graph
    (and == the Python fused loop, the module's fallback)."""
    compiled = make_sequence(4, [6, 5], seed=8, **options)
    plain = make_sequence(4, [6, 5], seed=8, fused_backward=False, **options)
    plain.load_state_dict(compiled.state_dict())
    x = (torch.randn(7, batch, 4, dtype=DT) * 2).requires_grad_(True)
    state = [
        (torch.rand(batch, h, dtype=DT) * 0.5, torch.rand(batch, h, dtype=DT) * 0.5) for h in (6, 5)
    ]
    results = []
    for seq, use_compiled in ((compiled, True), (plain, True), (compiled, False)):
        torch.manual_seed(99)  # the same zoneout, DropConnect and dropout masks
        with _fastloop.use_compiled_loop(use_compiled):
            out, final, layers = seq(x, state, return_all_layers=True)
        loss = (out**2).sum() + final[0].c.sum() + final[1].y.sum() + 0.5 * layers[0].sum()
        params = [p for p in seq.parameters() if p.requires_grad]
        results.append((out, final, torch.autograd.grad(loss, [x, *params])))
    assert [c["compiled"] for c in spy] == [True, True] + [False] * 4
    (out_c, final_c, grads_c), *others = results
    assert 0.0 < float((out_c != 0).double().mean()) < 1.0
    assert all(float(g.abs().sum()) > 0 for g in grads_c)
    names = ["x", *(n for n, p in compiled.named_parameters() if p.requires_grad)]
    for out_p, final_p, grads_p in others:
        torch.testing.assert_close(out_c, out_p, rtol=0, atol=1e-13)
        for a, b in zip(final_c, final_p):
            torch.testing.assert_close(a.c, b.c, rtol=0, atol=1e-13)
            torch.testing.assert_close(a.y, b.y, rtol=0, atol=1e-13)
        for name, a, b in zip(names, grads_c, grads_p):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("zoneout", ["none", "train", "eval"])
@pytest.mark.parametrize("recurrent", [_fastloop._DENSE, _fastloop._EVENTS])
@pytest.mark.parametrize(
    "spike",
    [triangle(), triangle(3.6, 3.6), triangle(1.0, 1.0, "clamped"), heaviside_no_grad],
    ids=["triangle", "triangle-3.6", "triangle-clamped", "no-grad"],
)
def test_compiled_loop_equals_python_fused_loop(ops, zoneout, recurrent, spike) -> None:
    """The C++ autograd.Function == functional.egru_layer_loop (its Python twin)."""
    steps, batch, hidden = 6, 3, 5
    args = [a.requires_grad_(True) for a in random_loop_inputs(steps, batch, hidden, seed=12)]
    g = torch.Generator().manual_seed(3)
    keep = torch.rand(steps, batch, hidden, generator=g) < 0.4 if zoneout == "train" else None
    p_eval = 0.3 if zoneout == "eval" else 0.0
    surr = _fastloop._surrogate(spike)
    ys_c, c_c, *_ = _fastloop.layer_loop_op(*args, keep, p_eval, recurrent, *surr)
    ys_p, c_p = egru_layer_loop(*args, spike_fn=spike, keep_mask=keep, zoneout_eval=p_eval)
    torch.testing.assert_close(ys_c, ys_p, rtol=0, atol=1e-14)
    torch.testing.assert_close(c_c, c_p, rtol=0, atol=1e-14)
    assert 0.0 < float((ys_c != 0).double().mean()) < 1.0
    weights = torch.randn(steps, batch, hidden, generator=g, dtype=DT)
    grads = [
        torch.autograd.grad((ys * weights).sum() + (c**2).sum(), args)
        for ys, c in ((ys_c, c_c), (ys_p, c_p))
    ]
    for name, a, b in zip(("gi", "y0", "c0", "w_hh", "b_hh", "theta"), *grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("zoneout", ["none", "train", "eval"])
@pytest.mark.parametrize("recurrent", [_fastloop._DENSE, _fastloop._EVENTS])
def test_gradcheck_compiled_loop(ops, zoneout, recurrent) -> None:
    """The C++ backward against finite differences in float64.

    With a triangle of support 1000 the surrogate vanishes 1e-3 away from the threshold, so
    when every ``c~ - theta`` is farther than that (checked) the surrogate gradient is the
    true derivative of the piecewise-smooth forward: gates, zoneout, the reset by
    subtraction and the thresholds are all checked exactly.
    """
    steps, batch, hidden = 4, 2, 3
    inputs = random_loop_inputs(steps, batch, hidden, seed=11, scale=1.0)
    g = torch.Generator().manual_seed(5)
    keep = torch.rand(steps, batch, hidden, generator=g) < 0.4 if zoneout == "train" else None
    p_eval = 0.3 if zoneout == "eval" else 0.0
    surr = _fastloop._surrogate(triangle(1.0, 1000.0))
    with torch.no_grad():
        gi, y0, c0, w_hh, b_hh, theta = inputs
        *_, c_tilde = ops.layer_forward(
            gi, y0, c0, w_hh, None, b_hh, theta, keep, p_eval, recurrent, 1.0, True
        )
    assert float((c_tilde - theta).abs().min()) > 2e-3
    events = ops.layer_forward(gi, y0, c0, w_hh, None, b_hh, theta, keep, p_eval, 0, 0.5, False)
    assert 0.0 < float((events[0] != 0).double().mean()) < 1.0
    inputs = tuple(t.requires_grad_(True) for t in inputs)

    def loop(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(_fastloop.layer_loop_op(*args, keep, p_eval, recurrent, *surr)[:2])

    assert torch.autograd.gradcheck(loop, inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("event_driven", [False, True])
def test_compiled_inference_equals_python_loop(ops, spy, dtype, batch, event_driven) -> None:
    """No gradients: dense and event-driven, zoneout in evaluation, carried state."""
    seq = make_sequence(3, [40, 7], seed=4, dtype=dtype, zoneout=0.2, event_driven=event_driven)
    seq.eval()
    x = torch.randn(9, batch, 3, dtype=dtype) * 2
    with torch.no_grad():
        out_c, state_c = seq(x)
        more_c, _ = seq(x, state_c)
        with _fastloop.use_compiled_loop(False):
            out_p, state_p = seq(x)
            more_p, _ = seq(x, state_p)
    assert [c["compiled"] for c in spy] == [True] * 4 + [False] * 4
    assert all(c["events"] == event_driven for c in spy)
    exact = {"rtol": 0, "atol": 1e-12} if dtype == torch.float64 else {}
    torch.testing.assert_close(out_c, out_p, **exact)
    torch.testing.assert_close(more_c, more_p, **exact)
    for a, b in zip(state_c, state_p):
        torch.testing.assert_close(a.c, b.c, **exact)
    assert 0.0 < float((out_c != 0).double().mean()) < 1.0


def test_event_driven_rows_fall_back_to_dense_above_half_active(ops) -> None:
    """Event mode at >50 % activity (the BLAS product) and below it agree with dense."""
    steps, batch, hidden = 5, 3, 8
    gi, y0, c0, w_hh, b_hh, theta = random_loop_inputs(steps, batch, hidden, seed=2, scale=3.0)
    w_t = w_hh.t().contiguous()
    for theta_value in (0.0, 0.6):  # nearly all units active, then few
        theta = torch.full((hidden,), theta_value, dtype=DT) + 1e-3
        dense = ops.layer_forward(gi, y0, c0, w_hh, None, b_hh, theta, None, 0.0, 0, 0.5, False)
        events = ops.layer_forward(gi, y0, c0, w_hh, w_t, b_hh, theta, None, 0.0, 1, 0.5, False)
        torch.testing.assert_close(events[0], dense[0], rtol=0, atol=1e-13)
        torch.testing.assert_close(events[1], dense[1], rtol=0, atol=1e-13)


def test_large_layers_use_the_event_driven_compiled_loop(ops, spy) -> None:
    from snn_egru.sequence import EVENT_DRIVEN_MIN_HIDDEN

    x = torch.randn(3, 1, 2, dtype=DT)
    with torch.no_grad():
        make_sequence(2, 6).eval()(x)
        make_sequence(2, EVENT_DRIVEN_MIN_HIDDEN).eval()(x)
    make_sequence(2, EVENT_DRIVEN_MIN_HIDDEN, event_driven=True).eval()(x)
    assert spy == [
        {"compiled": True, "events": False, "grad": False},
        {"compiled": True, "events": True, "grad": False},
        {"compiled": True, "events": False, "grad": True},  # gradients: never event-driven
    ]


def test_unsupported_cases_fall_back_to_the_python_loop(ops, spy, monkeypatch) -> None:
    """Each case the compiled loop does not cover runs (correctly) in the Python loop."""
    gi = torch.zeros(3, 1, 6, dtype=DT)
    tri = triangle()
    reason = _fastloop.unsupported_reason
    assert reason(gi, tri, needs_grad=True, fused_backward=True) is None
    assert "fused_backward=False" in reason(gi, tri, needs_grad=True, fused_backward=False)
    assert reason(gi, tri, needs_grad=False, fused_backward=False) is None
    assert "no compiled surrogate" in reason(
        gi, surrogate.fast_sigmoid(), needs_grad=False, fused_backward=True
    )
    assert "float32 and float64" in reason(
        gi.to(torch.bfloat16), tri, needs_grad=False, fused_backward=True
    )
    assert "empty sequence" in reason(gi[:0], tri, needs_grad=False, fused_backward=True)
    with _fastloop.use_compiled_loop(False):
        assert "switched off" in reason(gi, tri, needs_grad=False, fused_backward=True)
    monkeypatch.setenv(_fastloop.ENV_SWITCH, "0")
    assert "switched off" in reason(gi, tri, needs_grad=False, fused_backward=True)
    assert not _fastloop.available()
    monkeypatch.delenv(_fastloop.ENV_SWITCH)
    assert _fastloop.available()
    x = torch.randn(4, 2, 3, dtype=DT)
    snn = make_sequence(3, 5, spike_grad=surrogate.fast_sigmoid())
    out, _ = snn(x)
    out.sum().backward()
    assert spy[-1]["compiled"] is False and snn.weight_hh_l0.grad is not None


def test_state_and_shapes_through_the_compiled_loop(ops) -> None:
    """Unbatched and batch_first inputs, and a sequence split in two, as the Python loop."""
    seq = make_sequence(3, [5, 4], seed=1, batch_first=True).eval()
    x = torch.randn(2, 8, 3, dtype=DT) * 2
    with torch.no_grad():
        whole, state = seq(x)
        first, mid = seq(x[:, :3])
        second, end = seq(x[:, 3:], mid)
        single, single_state = seq(x[0].clone())
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=0, atol=1e-13)
    torch.testing.assert_close(single, whole[0], rtol=0, atol=1e-13)
    for a, b in zip(end, state):
        assert isinstance(a, EGRUCellState)
        torch.testing.assert_close(a.c, b.c, rtol=0, atol=1e-13)
    assert single_state[0].y.shape == (5,)


def test_build_errors_name_the_problem(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(_fastloop.ENV_CACHE, str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(_fastloop.CompiledLoopUnavailable, match="no C\\+\\+ compiler"):
        _fastloop.build()
    failing = tmp_path / "failing-cxx"
    failing.write_text("#!/bin/sh\necho 'error: this compiler always fails' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CXX", str(failing))
    with pytest.raises(_fastloop.CompiledLoopUnavailable, match="(?s)exit 3.*always fails"):
        _fastloop.build()
    assert list(tmp_path.glob("*.so")) == []  # nothing half-written is left behind


def test_library_name_follows_source_and_compiler(monkeypatch) -> None:
    first = _fastloop.library_path()
    assert first.name.startswith("fastloop-") and first.parent == _fastloop.cache_dir()
    monkeypatch.setenv("CXX", "clang++")
    assert _fastloop.library_path() != first


def test_state_sequences_are_collected_by_the_python_loop(ops, spy) -> None:
    """``return_state_sequence`` needs the per-step c and o: the compiled loop is not asked."""
    seq = make_sequence(3, 5, seed=2)
    x = torch.randn(6, 2, 3, dtype=DT)
    out, _, (internals,) = seq(x, return_state_sequence=True)
    assert spy == []
    compiled, _ = seq(x)
    assert spy[-1]["compiled"] is True
    torch.testing.assert_close(out, compiled, rtol=0, atol=1e-13)
    assert internals.o.shape == (6, 2, 5)
