"""NeuroBench 2.3's own metrics on the project's models (snn_egru.neurobench), checked against
snn_egru.sparsity on the same model and inputs; NeuroBench's SNNTorchModel with EGRU neurons."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("neurobench")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, Footprint  # noqa: E402
from neurobench.metrics.workload import (  # noqa: E402
    ActivationSparsity,
    ClassificationAccuracy,
    SynapticOperations,
)
from neurobench.models import SNNTorchModel  # noqa: E402

from snn_egru import EGRU  # noqa: E402
from snn_egru.models.dvs import DVSGestureNet, dvs_preset  # noqa: E402
from snn_egru.models.lm import EGRULanguageModel, lm_preset  # noqa: E402
from snn_egru.neurobench import EGRUBenchmarkModel, neurobench_table  # noqa: E402
from snn_egru.sparsity import SparsityProbe  # noqa: E402

METRICS = [
    [Footprint, ConnectionSparsity],
    [ActivationSparsity, SynapticOperations, ClassificationAccuracy],
]


def _run(model, loader):
    bench_model = EGRUBenchmarkModel(model)
    try:
        return Benchmark(bench_model, loader, [], [], METRICS).run(quiet=True)
    finally:
        bench_model.close()


def _dvs_model() -> DVSGestureNet:
    torch.manual_seed(0)
    model = DVSGestureNet(dvs_preset("tiny", num_classes=3)).eval()
    with torch.no_grad():  # some pruned weights, so that every count is non-trivial
        model.rnn.weight_hh_l0[::2] = 0.0
        model.rnn.weight_ih_l1[:, ::3] = 0.0
        model.readout.weight[0, :5] = 0.0
        for k in range(2):
            model.rnn.threshold_module(k).set_(0.05)
    return model


def _expected_connection_sparsity(model: nn.Module) -> float:
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    weights += [p for name, p in model.named_parameters() if ".weight_" in f".{name}"]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return round(zeros / sum(w.numel() for w in weights), 4)


def test_neurobench_metrics_equal_snn_egru_sparsity_on_the_dvs_model() -> None:
    model = _dvs_model()
    batch, steps, features = 4, 6, model.config.feature_size
    gen = torch.Generator().manual_seed(1)
    data = torch.relu(torch.randn(2 * batch, steps, features, generator=gen))
    labels = torch.randint(0, 3, (2 * batch,), generator=gen)
    loader = DataLoader(TensorDataset(data, labels), batch_size=batch)
    results = _run(model, loader)
    with SparsityProbe(model) as probe, torch.no_grad():
        predictions = [
            model.forward_features(x.transpose(0, 1)).logits.argmax(-1) for x, _ in loader
        ]
    account = probe.result()
    ops = results["SynapticOperations"]
    assert ops["Effective_ACs"] == 0  # graded events are MACs
    assert ops["Effective_MACs"] == pytest.approx(
        account.total_macs.event_driven * steps, rel=1e-12
    )
    assert ops["Dense"] == pytest.approx(account.total_macs.dense * steps, rel=1e-12)
    assert 0.0 < account.activity_sparsity < 1.0
    assert results["ActivationSparsity"] == pytest.approx(account.activity_sparsity, abs=1e-12)
    assert results["ClassificationAccuracy"] == pytest.approx(
        float((torch.cat(predictions) == labels).double().mean())
    )
    expected_bytes = sum(t.numel() * t.element_size() for t in model.parameters())
    expected_bytes += sum(t.numel() * t.element_size() for t in model.buffers())
    assert results["Footprint"] == expected_bytes
    assert results["ConnectionSparsity"] == _expected_connection_sparsity(model)
    # without the adapter NeuroBench sees none of the EGRU's synapses
    assert account.rnn_macs.event_driven > 0
    assert "SynapticOperations.Effective_MACs" in neurobench_table(results)


def test_neurobench_on_dvs_frames_is_batch_major_and_counts_the_cnn_head() -> None:
    model = _dvs_model()
    cfg = model.config
    gen = torch.Generator().manual_seed(2)
    frames = torch.poisson(
        torch.full((4, 5, 2, cfg.frame_size, cfg.frame_size), 0.3), generator=gen
    )
    labels = torch.randint(0, 3, (4,), generator=gen)
    results = _run(model, DataLoader(TensorDataset(frames, labels), batch_size=2))
    with torch.no_grad():
        expected = model(frames.transpose(0, 1)).logits.argmax(-1)  # time-major call
        batch_major = model(frames, batch_first=True)
    torch.testing.assert_close(batch_major.logits.argmax(-1), expected)
    assert batch_major.step_logits.shape == (4, 5, 3)
    assert results["ClassificationAccuracy"] == pytest.approx(
        float((expected == labels).double().mean())
    )
    features = model.features(frames, batch_first=True).detach()
    only_rnn = _run(model, DataLoader(TensorDataset(features, labels), batch_size=2))
    head = results["SynapticOperations"]["Effective_MACs"]
    assert head > only_rnn["SynapticOperations"]["Effective_MACs"] > 0
    with pytest.raises(ValueError, match="batch_first=True: batch, time"):
        model(frames[0], batch_first=True)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_neurobench_metrics_equal_snn_egru_sparsity_on_the_language_model(tie_weights) -> None:
    torch.manual_seed(0)
    config = lm_preset(
        "tiny",
        vocab_size=40,
        tie_weights=tie_weights,
        threshold_mean=0.05,
        **({} if tie_weights else {"embedding_size": 24}),
    )
    model = EGRULanguageModel(config).eval()
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 40, (6, 9), generator=gen)
    loader = DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=3)
    results = _run(model, loader)
    with SparsityProbe(model) as probe, torch.no_grad():
        preds = [model(x.t()).logits.argmax(-1).t() for x, _ in loader]
    account = probe.result()
    ops = results["SynapticOperations"]
    assert ops["Effective_MACs"] == pytest.approx(account.total_macs.event_driven * 8, rel=1e-12)
    assert ops["Dense"] == pytest.approx(account.total_macs.dense * 8, rel=1e-12)
    assert results["ActivationSparsity"] == pytest.approx(account.activity_sparsity, abs=1e-12)
    targets = tokens[:, 1:]
    assert results["ClassificationAccuracy"] == pytest.approx(
        float((torch.cat(preds) == targets).double().mean())
    )
    assert set(model.state_dict()) == set(EGRULanguageModel(config).state_dict())


def test_adapter_resets_state_between_batches_and_leaves_the_model_unchanged() -> None:
    model = _dvs_model()
    bench = EGRUBenchmarkModel(model)
    gen = torch.Generator().manual_seed(4)
    a, b = (torch.relu(torch.randn(2, 5, 32, generator=gen)) for _ in range(2))
    first = bench(b)
    bench(a)
    torch.testing.assert_close(bench(b), first)
    bench.close()
    out, state = model.rnn(torch.randn(5, 2, 32))  # the hooks are gone: plain outputs again
    assert isinstance(state, list)
    with pytest.raises(TypeError, match="no default NeuroBench forward"):
        EGRUBenchmarkModel(nn.Sequential(model.rnn))


def test_neurobench_snntorch_model_resets_egru_neurons_between_batches() -> None:
    """NeuroBench's own SNNTorchModel calls snntorch.utils.reset: with EGRU neurons inside a
    container the state no longer leaks from one batch into the next."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(4, 6), nn.Sequential(EGRU(6, 5, init_hidden=True, output=True, threshold=0.05))
    )

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = net

        def forward(self, x):
            return self.body(x)

    model = SNNTorchModel(Wrapped())
    gen = torch.Generator().manual_seed(5)
    a, b = (torch.randn(3, 7, 4, generator=gen) * 2 for _ in range(2))
    first = model(b)
    model(a)
    torch.testing.assert_close(model(b), first)
    assert float((first != 0).double().mean()) > 0


def test_step_wise_egru_neurons_count_their_synapses() -> None:
    """A snnTorch-style net (one call per step, EGRU with init_hidden) in NeuroBench: the EGRU's
    input and recurrent products are counted from what each step reads."""
    from snn_egru.sparsity import product_macs

    torch.manual_seed(0)
    egru = EGRU(6, 5, init_hidden=True, output=True, threshold=0.05)
    net = nn.Sequential(nn.Linear(4, 6), egru).eval()
    with torch.no_grad():
        egru.weight_hh[::2] = 0.0

    def forward(model, batch):
        spikes = torch.stack([model(batch[:, t])[0] for t in range(batch.shape[1])], 1)
        return spikes.sum(1).argmax(-1)

    gen = torch.Generator().manual_seed(6)
    data = torch.randn(4, 7, 4, generator=gen)
    labels = torch.randint(0, 5, (4,), generator=gen)
    bench = EGRUBenchmarkModel(net, forward=forward)
    results = Benchmark(
        bench, DataLoader(TensorDataset(data, labels), batch_size=2), [], [], METRICS
    ).run(quiet=True)
    bench.close()
    expected = 0.0
    events = []
    with torch.no_grad():
        for x, _ in DataLoader(TensorDataset(data, labels), batch_size=2):
            egru.reset_mem()
            y_prev = torch.zeros(2, 5)
            for t in range(x.shape[1]):
                h = net[0](x[:, t])
                expected += product_macs(net[0].weight, x[:, t])[0].event_driven
                expected += product_macs(egru.weight_ih, h)[0].event_driven
                expected += product_macs(egru.weight_hh, y_prev)[0].event_driven
                y_prev = egru(h)[0]
                events.append(y_prev)
    assert results["SynapticOperations"]["Effective_MACs"] == pytest.approx(expected / 4)
    events = torch.stack(events)
    assert results["ActivationSparsity"] == pytest.approx(float((events == 0).double().mean()))
