"""The sweep's MACs per token equal NeuroBench's own count on every model kind: the EGRU
(language model and DVS net, through snn_egru.neurobench) and the dense GRU / LSTM baselines
(NeuroBench's Benchmark on a step-wise GRUCell / LSTMCell model with the same weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("neurobench")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import SynapticOperations  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402

from snn_egru.models.dvs import DVSGestureNet, dvs_preset  # noqa: E402
from snn_egru.models.lm import EGRULanguageModel, lm_preset  # noqa: E402
from snn_egru.neurobench import EGRUBenchmarkModel  # noqa: E402
from snn_egru.sparsity import SparsityProbe  # noqa: E402
from snn_egru.sweep.measure import DenseOpsProbe, _cell_view, macs_from_account  # noqa: E402

METRICS = [[], [SynapticOperations]]


class StepwiseDense(nn.Module):
    """A dense model run one step at a time through GRUCell / LSTMCell views (what NeuroBench
    counts), explicit zero states at the start, a real nn.Linear readout."""

    def __init__(self, model: nn.Module, readout_weight: torch.Tensor, embedding=None) -> None:
        super().__init__()
        self.embedding = embedding
        self.cells = nn.ModuleList(_cell_view(layer) for layer in model.rnn.layers)
        out, hidden = readout_weight.shape
        self.readout = nn.Linear(hidden, out, bias=False)
        with torch.no_grad():
            self.readout.weight.copy_(readout_weight)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = self.embedding(batch) if self.embedding is not None else batch
        b, steps = x.shape[:2]
        states = [
            (x.new_zeros(b, c.hidden_size), x.new_zeros(b, c.hidden_size)) for c in self.cells
        ]
        logits = []
        for t in range(steps):
            inp = x[:, t]
            for k, cell in enumerate(self.cells):
                if isinstance(cell, nn.LSTMCell):
                    states[k] = cell(inp, states[k])
                else:
                    h = cell(inp, states[k][0])
                    states[k] = (h, h)
                inp = states[k][0]
            logits.append(self.readout(inp))
        return torch.stack(logits, 1).argmax(-1)


def _pruned(model: nn.Module) -> nn.Module:
    with torch.no_grad():  # some zero weights, so that the effective count differs from dense
        for name, p in model.rnn.named_parameters():
            if "weight_hh" in name:
                p[::3] = 0.0
    return model.eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_dense_language_model_macs_equal_neurobench(cell) -> None:
    torch.manual_seed(0)
    config = lm_preset("tiny", vocab_size=30, cell=cell, hidden_sizes=(20, 16))
    model = _pruned(EGRULanguageModel(config))
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 30, (4, 7), generator=gen)
    loader = DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=2)
    net = StepwiseDense(model, model.decoder_weight.detach(), embedding=model.embedding)
    ops = Benchmark(TorchModel(net), loader, [], [], METRICS).run(quiet=True)
    ops = ops["SynapticOperations"]
    probe = DenseOpsProbe(model, model.decoder_weight)
    with probe, torch.no_grad():
        for x, _ in loader:
            model(x.t().contiguous())
    macs = probe.macs()
    steps = 6
    assert macs["effective_with_decoder"] * steps == pytest.approx(ops["Effective_MACs"], rel=1e-12)
    assert macs["dense_with_decoder"] * steps == pytest.approx(ops["Dense"], rel=1e-12)
    assert macs["effective_rnn"] < macs["dense_rnn"]  # the zeros were skipped
    if cell == "gru":  # (NeuroBench's LSTM "Dense" leaves the nested (h, c) state as it is)
        matrix = 3 * (20 * (16 + 20) + 16 * (20 + 16))  # dense matrix products per step
        assert matrix < macs["dense_rnn"] < matrix * 1.05  # plus its element-wise terms


def test_dense_dvs_macs_equal_neurobench() -> None:
    torch.manual_seed(0)
    model = _pruned(DVSGestureNet(dvs_preset("tiny", num_classes=3, cell="gru")))
    gen = torch.Generator().manual_seed(2)
    features = torch.relu(torch.randn(4, 5, model.config.feature_size, generator=gen))
    labels = torch.randint(0, 3, (4,), generator=gen)
    loader = DataLoader(TensorDataset(features, labels), batch_size=2)
    net = StepwiseDense(model, model.readout.weight.detach())
    ops = Benchmark(TorchModel(net), loader, [], [], METRICS).run(quiet=True)
    probe = DenseOpsProbe(model, model.readout.weight)
    with probe, torch.no_grad():
        for x, _ in loader:
            model.forward_features(x.transpose(0, 1))
    macs = probe.macs()
    effective = ops["SynapticOperations"]["Effective_MACs"]
    assert macs["effective_with_decoder"] * 5 == pytest.approx(effective, rel=1e-12)


def test_egru_macs_of_the_sweep_equal_neurobench_on_lm_and_dvs() -> None:
    torch.manual_seed(0)
    lm = EGRULanguageModel(lm_preset("tiny", vocab_size=30, threshold_mean=0.05)).eval()
    tokens = torch.randint(0, 30, (4, 9), generator=torch.Generator().manual_seed(3))
    loader = DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=2)
    dvs = DVSGestureNet(dvs_preset("tiny", num_classes=3)).eval()
    feats = torch.relu(torch.randn(4, 6, dvs.config.feature_size))
    dvs_loader = DataLoader(TensorDataset(feats, torch.zeros(4, dtype=torch.long)), batch_size=2)
    for model, data, steps, run in (
        (lm, loader, 8, lambda m, x: m(x.t().contiguous())),
        (dvs, dvs_loader, 6, lambda m, x: m.forward_features(x.transpose(0, 1))),
    ):
        bench = EGRUBenchmarkModel(model)
        try:
            ops = Benchmark(bench, data, [], [], METRICS).run(quiet=True)["SynapticOperations"]
        finally:
            bench.close()
        with SparsityProbe(model) as probe, torch.no_grad():
            for x, _ in data:
                run(model, x)
        macs = macs_from_account(probe.result())
        assert macs["effective_with_decoder"] * steps == pytest.approx(
            ops["Effective_MACs"], rel=1e-12
        )
        assert macs["effective_decoder"] > 0
        assert macs["effective_rnn"] + macs["effective_decoder"] == pytest.approx(
            macs["effective_with_decoder"]
        )
