"""torch.compile of models holding an EGRUSequence: the compiled C++ loop is a torch.library
custom op (fake kernel + autograd registration), so the whole forward traces as one graph
(``fullgraph=True``) and compiled equals eager, in evaluation and for a training step's
gradients. Few, small compilations: each costs seconds of CPU."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_func

from snn_egru import EGRUSequence, _fastloop


@pytest.fixture(autouse=True)
def _compiled_loop():
    if not _fastloop.enabled():
        pytest.skip(f"compiled loop switched off by {_fastloop.ENV_SWITCH}")
    if shutil.which(_fastloop._compiler()) is None:
        pytest.skip("no C++ compiler: the compiled loop cannot be built here")
    _fastloop.load()
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class _Net(nn.Module):
    """Linear encoder, two EGRU layers, linear readout: a typical user model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(6, 8)
        self.seq = EGRUSequence(8, [12, 10], threshold_mean=0.1, zoneout=0.1)
        self.readout = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        events, _state = self.seq(torch.tanh(self.encoder(x)) * 2)
        return self.readout(events)


def _inputs() -> torch.Tensor:
    return torch.randn(7, 3, 6, generator=torch.Generator().manual_seed(1))


def _recording_backend():
    """AOTAutograd with recording compilers: the forward and backward graphs it traced."""
    graphs: dict[str, list] = {"forward": [], "backward": []}

    def compiler(kind: str):
        def record(gm: torch.fx.GraphModule, _example_inputs):
            graphs[kind].append(gm)
            return make_boxed_func(gm.forward)

        return record

    backend = aot_autograd(fw_compiler=compiler("forward"), bw_compiler=compiler("backward"))
    return backend, graphs


def _ops_in(graphs: list) -> set[str]:
    return {
        str(node.target)
        for gm in graphs
        for node in gm.graph.nodes
        if node.op == "call_function" and str(node.target).startswith("snn_egru.")
    }


def test_eval_compiles_fullgraph_with_the_default_backend_and_equals_eager() -> None:
    net = _Net().eval()
    x = _inputs()
    with torch.no_grad():
        eager = net(x)
        compiled = torch.compile(net, fullgraph=True)(x)  # default backend (inductor)
    assert 0.0 < float((net.seq(torch.tanh(net.encoder(x)) * 2)[0] != 0).float().mean()) < 1.0
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


def test_training_step_compiles_fullgraph_through_the_custom_ops_and_equals_eager() -> None:
    """The forward graph holds the C++ loop as ``snn_egru.layer_loop``, the backward graph
    its hand-written backward; outputs and every parameter's gradient equal eager."""
    backend, graphs = _recording_backend()
    net = _Net().train()
    x = _inputs()
    torch.manual_seed(5)  # zoneout masks: same draws in both runs
    compiled_out = torch.compile(net, backend=backend, fullgraph=True)(x)
    compiled_out.square().sum().backward()
    compiled_grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    torch.manual_seed(5)
    eager_out = net(x)
    eager_out.square().sum().backward()
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-5, atol=1e-6)
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
        torch.testing.assert_close(compiled_grads[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)
    assert _ops_in(graphs["forward"]) == {"snn_egru.layer_loop.default"}
    assert _ops_in(graphs["backward"]) == {"snn_egru.layer_loop_backward.default"}


def test_inference_graph_uses_the_inference_op() -> None:
    backend, graphs = _recording_backend()
    net = _Net().eval()
    with torch.no_grad():
        torch.compile(net, backend=backend, fullgraph=True)(_inputs())
    assert _ops_in(graphs["forward"]) == {"snn_egru.layer_infer.default"}


def test_custom_op_registrations_pass_torch_opcheck() -> None:
    """Schema, fake kernel and autograd registration checked by torch.library.opcheck."""
    g = torch.Generator().manual_seed(2)
    steps, batch, hidden = 5, 2, 4
    gi = torch.randn(steps, batch, 3 * hidden, generator=g, dtype=torch.float64)
    y0 = torch.zeros(batch, hidden, dtype=torch.float64)
    c0 = torch.randn(batch, hidden, generator=g, dtype=torch.float64) * 0.3
    w = torch.randn(3 * hidden, hidden, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(3 * hidden, generator=g, dtype=torch.float64) * 0.5
    theta = torch.full((hidden,), 0.1, dtype=torch.float64)
    tensors = [t.requires_grad_(True) for t in (gi, y0, c0, w, b, theta)]
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(
        _fastloop.layer_loop_op,
        (*tensors, None, 0.0, _fastloop._DENSE, 1, 0.7, 1.0),
        test_utils=tests,
    )
    detached = [t.detach() for t in tensors]
    torch.library.opcheck(
        _fastloop.layer_infer_op,
        (*detached[:4], None, *detached[4:], None, 0.2, _fastloop._DENSE, 0.5),
        test_utils=("test_schema", "test_faketensor"),
    )


def test_one_step_egru_neuron_compiles_fullgraph_in_an_snntorch_style_net() -> None:
    """The snnTorch-style neuron (``init_hidden=True``, state kept inside) traces without a
    graph break and steps like eager."""
    from snn_egru import EGRU

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), EGRU(6, 5, init_hidden=True, threshold_mean=0.1))
    x = torch.randn(3, 4)
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    first, second = compiled(x), compiled(x)
    net[1].reset_mem()
    torch.testing.assert_close(first, net(x), rtol=0, atol=0)
    torch.testing.assert_close(second, net(x), rtol=0, atol=0)
    assert bool((second != 0).any())
