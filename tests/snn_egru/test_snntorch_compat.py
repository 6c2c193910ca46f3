"""snnTorch's own helpers with the EGRU: utils.reset, backprop.BPTT, detach_hidden() TBPTT,
spikegen / functional losses, spikeplot; thresholds that drift; the Leaky call idiom."""

from __future__ import annotations

import gc
import textwrap

import matplotlib
import pytest
import snntorch as snn
import snntorch.functional as SF
import snntorch.utils as snn_utils
import torch
from snntorch import backprop, spikegen, spikeplot
from torch import nn

from snn_egru import EGRU, use_with_snntorch
from snn_egru.functional import EGRUCellState
from snn_egru.neuron import _LIVE
from snn_egru.utils import snntorch_resets_egru
from tests.fresh_python import run_python

matplotlib.use("Agg")


def _rate_task(batch: int, steps: int, generator: torch.Generator):
    """Two classes: class k fires features 4k..4k+3 with rate 0.8, the others with 0.1."""
    labels = torch.randint(0, 2, (batch,), generator=generator)
    rates = torch.full((batch, 8), 0.1)
    for k in (0, 1):
        rates[labels == k, 4 * k : 4 * k + 4] = 0.8
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    return spikegen.rate(rates, num_steps=steps), labels  # (T, B, 8) 0/1 spikes


def _tutorial_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16),
        nn.Sequential(EGRU(16, 16, init_hidden=True, threshold_mean=0.1)),  # nested: PR #414
        nn.Linear(16, 2),
        snn.Leaky(beta=0.8, init_hidden=True, output=True),
    )


def _train_tutorial_loop(net: nn.Module, iterations: int) -> list[float]:
    """snnTorch tutorial 5/6 loop: reset every batch, record spikes, rate loss, Adam."""
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = SF.ce_rate_loss()
    losses = []
    for _ in range(iterations):
        data, targets = _rate_task(16, 12, generator)
        snn_utils.reset(net)  # snnTorch's own reset, unchanged
        spk_rec = []
        for step in range(data.shape[0]):
            spk, _mem = net(data[step])
            spk_rec.append(spk)
        loss = loss_fn(torch.stack(spk_rec), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_snntorch_reset_is_extended_and_scoped_to_the_net() -> None:
    assert use_with_snntorch() is True  # idempotent; active since snn_egru.neuron was imported
    inner = EGRU(3, 4, init_hidden=True)
    net = nn.Sequential(nn.Linear(2, 3), nn.ModuleList([nn.Sequential(inner)]))
    other = EGRU(3, 4, init_hidden=True)
    inner(torch.randn(5, 3) * 3)
    other(torch.randn(5, 3) * 3)
    inner.c = inner.c + 1.0  # non-zero state with a graph
    snn_utils.reset(net)
    assert inner.c.shape == (5, 4) and bool((inner.c == 0).all()) and inner.c.grad_fn is None
    assert bool((other.c != 0).any()), "reset(net) must not touch an EGRU outside net (#449)"


def test_tutorial_loop_trains_with_snntorch_reset() -> None:
    net = _tutorial_net()
    losses = _train_tutorial_loop(net, 30)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_without_the_extension_the_tutorial_loop_breaks() -> None:
    """The failure the extension fixes: snnTorch 1.0 leaves the EGRU's graph in its state."""
    assert use_with_snntorch(False) is False
    try:
        with pytest.raises(RuntimeError, match="inplace operation|a second time"):
            _train_tutorial_loop(_tutorial_net(), 2)
    finally:
        assert use_with_snntorch() is True


def test_extension_is_a_no_op_when_snntorch_resets_egrus_itself(monkeypatch) -> None:
    """An snnTorch with PR #414 + #449 (instance-level reset over net.modules()): no patch."""

    def upstream_reset(net: nn.Module) -> None:
        for module in net.modules():
            if isinstance(module, snn.SpikingNeuron) and hasattr(module, "reset_mem"):
                module.reset_mem()

    assert snntorch_resets_egru(upstream_reset) is True
    assert snntorch_resets_egru() is False  # snnTorch 1.0, without the extension
    use_with_snntorch(False)
    try:
        monkeypatch.setattr(snn_utils, "reset", upstream_reset)
        assert use_with_snntorch() is False
        assert snn_utils.reset is upstream_reset
    finally:
        monkeypatch.undo()
        assert use_with_snntorch() is True


def test_snntorch_backprop_bptt_trains_a_net_ending_in_an_egru() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 12), EGRU(12, 2, init_hidden=True, output=True))
    assert snn_utils._final_layer_check(net) == 2  # (y, c) like Leaky's (spk, mem)
    generator = torch.Generator().manual_seed(3)
    loader = [_rate_task(16, 10, generator) for _ in range(4)]
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = [
        float(
            backprop.BPTT(
                net, loader, optimizer, SF.ce_rate_loss(), num_steps=False, time_var=True
            ).detach()
        )
        for _ in range(6)
    ]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses


def test_detach_hidden_tbptt_loop() -> None:
    """Truncated BPTT, snnTorch style: `Neuron.detach_hidden()` between windows."""
    net = _tutorial_net()
    egru = net[1][0]
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2)
    data, targets = _rate_task(8, 12, torch.Generator().manual_seed(5))
    loss_fn = SF.ce_rate_loss()

    def run(detach) -> None:
        snn_utils.reset(net)
        for window in range(3):
            spk_rec = [net(data[4 * window + t])[0] for t in range(4)]
            loss = loss_fn(torch.stack(spk_rec), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            detach()

    run(lambda: (EGRU.detach_hidden(), snn.Leaky.detach_hidden()))  # class-level, snnTorch's
    run(lambda: (egru.detach_hidden(), snn.Leaky.detach_hidden()))  # one instance
    assert egru.c.grad_fn is None
    with pytest.raises(RuntimeError, match="inplace operation|a second time"):
        run(snn.Leaky.detach_hidden)  # the EGRU's state kept its graph


def test_live_registry_does_not_keep_modules_alive() -> None:
    gc.collect()  # modules of earlier tests awaiting collection must not count below
    egru = EGRU(2, 3)
    assert egru in _LIVE
    before = len(_LIVE)
    del egru
    gc.collect()
    assert len(_LIVE) == before - 1
    assert all(module is not None for module in snn.SpikingNeuron.instances)


def test_thresholds_drifting_out_of_range_after_a_step_do_not_crash() -> None:
    torch.manual_seed(0)
    egru = EGRU(3, 4, threshold=0.99)
    optimizer = torch.optim.SGD(egru.parameters(), lr=10.0)
    x = torch.randn(6, 3)
    y, c = egru(x)
    (c.sum() * -1.0).backward()  # pushes theta up, beyond 1
    optimizer.step()
    assert float(egru.thresholds.theta.detach().max()) > 1.0
    y, c = egru(x)  # EvNN's behaviour: clamped in the forward pass, no error
    assert float(egru.thresholds.theta.detach().max()) <= 1.0
    assert bool(torch.isfinite(y).all())
    with torch.no_grad():
        egru.thresholds.theta[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        egru(x)


def test_leaky_call_idiom_is_refused_and_state_object_accepted() -> None:
    egru = EGRU(3, 4)
    x = torch.randn(2, 3)
    mem = egru.init_egru()
    state = egru(x, mem)  # an (empty y, empty c) pair: zeros
    assert isinstance(state, EGRUCellState)
    spk, mem = state
    with pytest.raises(TypeError, match=r"egru\(x, y, c\)"):
        egru(x, mem)  # Leaky's `spk, mem = lif(x, mem)`: c would land in y's slot
    torch.testing.assert_close(egru(x, state), egru(x, state.y, state.c))
    with pytest.raises(TypeError, match="pair"):
        egru(x, (spk, mem, mem))


def test_spikeplot_raster_of_egru_events() -> None:
    import matplotlib.pyplot as plt

    torch.manual_seed(0)
    egru = EGRU(3, 6, threshold=0.05)
    state = None
    events = []
    with torch.no_grad():
        for _ in range(20):
            state = egru(torch.randn(3) * 2, state)
            events.append(state.y)
    events = torch.stack(events)  # (T, H) graded events
    fig, ax = plt.subplots()
    try:
        collection = spikeplot.raster(events != 0, ax, s=4, c="black")
        assert collection.get_offsets().shape[0] == int((events != 0).sum()) > 0
    finally:
        plt.close(fig)


_IMPORT_ORDER_SCRIPT = """
{imports}
import snntorch as snn
import snntorch.functional as SF
import torch
from torch import nn

torch.manual_seed(0)
net = nn.Sequential(
    nn.Linear(8, 16),
    snn_egru.EGRU(16, 16, init_hidden=True, threshold_mean=0.1),
    nn.Linear(16, 2),
    snn.Leaky(beta=0.8, init_hidden=True, output=True),
)
optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
for batch in range(3):
    data = (torch.rand(6, 4, 8) < 0.3).float()
    reset(net)  # the name imported above, whichever came first
    spikes = torch.stack([net(data[t])[0] for t in range(data.shape[0])])
    loss = SF.ce_rate_loss()(spikes, torch.tensor([0, 1, 0, 1]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print("ok", batch + 1)
"""


@pytest.mark.parametrize(
    "imports",
    [
        "from snntorch.utils import reset\nimport snn_egru",  # the order that used to fail
        "import snn_egru\nfrom snntorch.utils import reset",
    ],
    ids=["snntorch-reset-first", "snn_egru-first"],
)
def test_snntorch_reset_imported_by_name_works_in_either_import_order(imports: str) -> None:
    """``from snntorch.utils import reset`` binds the original function; the extension must
    reach it anyway (several batches: without it the second batch fails in autograd)."""
    script = textwrap.dedent(_IMPORT_ORDER_SCRIPT).format(imports=imports)
    result = run_python(script, timeout=180, env={"SNN_EGRU_COMPILED_LOOP": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok 3")
