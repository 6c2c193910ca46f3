"""What the sweep measures on a trained model: MACs per token, sparsity, simulated chip cost.

MACs per token (one step of one stream), counted as NeuroBench counts them:

* EGRU: :class:`~snn_egru.sparsity.SparsityProbe` (the event-driven count: a product visits
  only the non-zero inputs and the non-zero weights of their columns), which equals
  NeuroBench's ``SynapticOperations`` ``Effective_MACs`` through the adapter of
  :mod:`snn_egru.neurobench` (``tests/snn_egru/test_neurobench.py``).
* dense GRU / LSTM: :class:`DenseOpsProbe` hands every layer's step inputs ``(x_t, h_{t-1})``
  (LSTM: ``(x_t, (h_{t-1}, c_{t-1}))``) to NeuroBench's own per-layer counter
  (``neurobench.metrics.utils.layers.single_layer_MACs``) on an ``nn.GRUCell`` /
  ``nn.LSTMCell`` that shares the layer's weights: NeuroBench counts a ``GRUCell`` /
  ``LSTMCell`` (it has no count for ``nn.GRU`` / ``nn.LSTM``), including its few element-wise
  products (``r * (W_hn h + b_hn)``, ``z * h``, ... : about ``3H`` per step, well under 1 % of
  the matrix products). ``tests/snn_egru/test_sweep.py`` checks the count against
  NeuroBench's ``Benchmark`` on a step-wise ``GRUCell`` / ``LSTMCell`` model.

Each count is given for the recurrent layers alone (``rnn``), the decoder / readout alone
(``decoder``, the tied decoder or linear readout applied to the last layer's output) and both
(``with_decoder``), ``effective`` (what is done) and ``dense`` (every weight, every input).

Simulated chip cost: the model is exported, mapped with the fewest PEs that fit
(``spinnaker2_backend.map_network`` without a partition limit) and run on the simulated
chip with ``record=False`` (counters only: memory does not grow with the run); time, energy
and average power per token come from the run's profile and energy estimate (the readout on
the host, as published: the chip figures cover the recurrent layers).

A dense GRU / LSTM cannot be exported (the chip model runs EGRU layers). It is costed by a
*stand-in* artifact (:func:`dense_standin_artifact`): the trained model's own weight matrices
(same shapes, same zeros), in the EGRU layout the GRU already has (gates r, z, n), with
thresholds 0 and the update gate's and candidate's biases set so that ``c~ = 1`` on every
step: every unit sends an event on every step, which is exactly what a dense recurrent layer
sends (its whole state), and the chip's work (weights walked, events received and
multiplied, packets, point-wise updates of ``H`` units with 3 gates) is what a GRU layer of
that shape costs there. Its outputs are not the GRU's (the chip model's point-wise step is
the EGRU's), only its cost. An LSTM has 4 gates: the stand-in carries 3 of them (rows of
the i, f, g gates), so LSTM chip figures are a lower bound (3/4 of its products).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from snn_egru.errors import UserError
from snn_egru.sparsity import SparsityMeter, SparsityProbe, product_macs

log = logging.getLogger(__name__)

__all__ = [
    "DenseOpsProbe",
    "UnitCountingMeter",
    "chip_cost",
    "event_probe",
    "dense_standin_artifact",
    "fits_on_chip",
    "macs_from_account",
]

#: Bias that saturates a gate of the stand-in artifact (sigmoid -> 0, tanh -> 1).
STANDIN_BIAS = 1.0e4


# --------------------------------------------------------------------------- dead units
class UnitCountingMeter(SparsityMeter):
    """A :class:`~snn_egru.sparsity.SparsityMeter` that also counts each unit's events, so a
    unit that never sent an event over the whole evaluation (a *dead* unit) is found."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit_events = [np.zeros(w_hh.shape[1], dtype=np.int64) for _, w_hh in self.weights]

    def update(self, inputs: Any, layer_events: Any, previous_events: Any = None) -> None:
        super().update(inputs, layer_events, previous_events)
        for k, events in enumerate(layer_events):
            y = events.detach().cpu().numpy() if hasattr(events, "detach") else np.asarray(events)
            self.unit_events[k] += np.count_nonzero(y.reshape(-1, y.shape[-1]), axis=0)

    def dead_units(self) -> list[int]:
        """Per layer: units with no event over everything seen."""
        return [int((counts == 0).sum()) for counts in self.unit_events]


def event_probe(model: nn.Module) -> SparsityProbe:
    """:class:`~snn_egru.sparsity.SparsityProbe` of an EGRU model whose meter also counts
    each unit's events (:class:`UnitCountingMeter`)."""
    probe = SparsityProbe(model, track_time=False)
    old = probe.meter
    probe.meter = UnitCountingMeter(
        [(w_ih, w_hh) for w_ih, w_hh in old.weights],
        readout_weight=old.readout_weight,
        track_time=False,
    )
    return probe


# --------------------------------------------------------------------------- MACs
def macs_from_account(account: Any) -> dict[str, float]:
    """MACs per token of an EGRU from a :class:`~snn_egru.sparsity.SparsityAccount`."""
    readout = account.readout_macs
    return {
        "effective_rnn": account.rnn_macs.event_driven,
        "effective_decoder": readout.event_driven if readout else 0.0,
        "effective_with_decoder": account.total_macs.event_driven,
        "dense_rnn": account.rnn_macs.dense,
        "dense_decoder": readout.dense if readout else 0.0,
        "dense_with_decoder": account.total_macs.dense,
        "counted_by": "snn_egru.sparsity.SparsityProbe (= NeuroBench Effective_MACs via "
        "snn_egru.neurobench)",
    }


def _neurobench_layer_macs():
    try:
        from neurobench.metrics.utils.layers import single_layer_MACs
    except ImportError as exc:  # pragma: no cover - neurobench is part of the test setup
        raise UserError(
            "counting a dense GRU / LSTM needs NeuroBench: pip install --no-deps neurobench==2.3.0"
        ) from exc
    return single_layer_MACs


def _cell_view(layer: nn.Module) -> nn.Module:
    """An ``nn.GRUCell`` / ``nn.LSTMCell`` sharing the weights of a 1-layer ``nn.GRU`` /
    ``nn.LSTM``."""
    kind = nn.GRUCell if isinstance(layer, nn.GRU) else nn.LSTMCell
    cell = kind(layer.input_size, layer.hidden_size, bias=layer.bias)
    cell.weight_ih = layer.weight_ih_l0
    cell.weight_hh = layer.weight_hh_l0
    if layer.bias:
        cell.bias_ih = layer.bias_ih_l0
        cell.bias_hh = layer.bias_hh_l0
    return cell.eval()


class DenseOpsProbe:
    """Count the MACs of a dense GRU / LSTM model with NeuroBench's own layer counter.

    Hooks ``model.rnn`` (a :class:`~snn_egru.models.dense.DenseRecurrentStack`); every
    forward call adds the step inputs of every layer, and the readout of the last layer's
    outputs (``readout_weight``: the tied decoder or linear readout; ``None``: not counted).
    Use as a context manager around the evaluation.
    """

    def __init__(self, model: nn.Module, readout_weight: Tensor | None) -> None:
        from snn_egru.training.common import unwrap_model

        self.model = unwrap_model(model)
        self.rnn = self.model.rnn
        self.cells = [_cell_view(layer) for layer in self.rnn.layers]
        self.readout_weight = None if readout_weight is None else readout_weight.detach()
        self._count = _neurobench_layer_macs()
        self.rnn_effective = self.rnn_dense = 0.0
        self.decoder_effective = self.decoder_dense = 0.0
        self.tokens = 0
        self.zeros = self.units = 0
        self._handle: Any = None
        self._busy = False

    def __enter__(self) -> DenseOpsProbe:
        self._handle = self.rnn.register_forward_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @torch.no_grad()
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if self._busy:
            return
        x = args[0] if args else kwargs["x"]
        state = args[1] if len(args) > 1 else kwargs.get("state")
        if kwargs.get("return_all_layers"):
            outputs = output[2]
        else:
            self._busy = True
            try:
                outputs = module(x, state, return_all_layers=True)[2]
            finally:
                self._busy = False
        steps, batch = x.shape[:2]
        layer_input = x
        for k, (cell, out) in enumerate(zip(self.cells, outputs)):
            hidden = cell.hidden_size
            if state is None:
                h0 = x.new_zeros(batch, hidden)
                c0 = x.new_zeros(batch, hidden)
            else:
                h0, c0 = state[k][0], state[k][1]
            h_prev = torch.cat([h0[None], out[:-1]], 0).reshape(-1, hidden)
            xs = layer_input.reshape(-1, layer_input.shape[-1])
            if isinstance(cell, nn.LSTMCell):
                cs, h, c = [], h0, c0
                for t in range(steps):
                    cs.append(c)
                    h, c = cell(layer_input[t], (h, c))
                inputs = (xs, (h_prev, torch.cat(cs, 0)))
            else:
                inputs = (xs, h_prev)
            self.rnn_effective += float(self._count(inputs, cell)[0])
            self.rnn_dense += float(self._count(inputs, cell, total=True)[0])
            self.zeros += int((out == 0).sum())
            self.units += out.numel()
            layer_input = out
        if self.readout_weight is not None:
            counts, _ = product_macs(self.readout_weight, layer_input)
            self.decoder_effective += counts.event_driven
            self.decoder_dense += counts.dense
        self.tokens += steps * batch

    def macs(self) -> dict[str, Any]:
        """MACs per token (see the module docstring for the keys)."""
        n = max(1, self.tokens)
        rnn, dec = self.rnn_effective / n, self.decoder_effective / n
        rnn_d, dec_d = self.rnn_dense / n, self.decoder_dense / n
        return {
            "effective_rnn": rnn,
            "effective_decoder": dec,
            "effective_with_decoder": rnn + dec,
            "dense_rnn": rnn_d,
            "dense_decoder": dec_d,
            "dense_with_decoder": rnn_d + dec_d,
            "counted_by": "neurobench single_layer_MACs on GRUCell/LSTMCell views (recurrent) "
            "+ snn_egru.sparsity.product_macs (decoder, = NeuroBench's nn.Linear count)",
        }

    @property
    def activity_sparsity(self) -> float:
        return self.zeros / self.units if self.units else 0.0


def weight_sparsity(rnn: nn.Module) -> float:
    """Fraction of zero weights over every recurrent weight matrix of the stack."""
    zeros = total = 0
    for name, p in rnn.named_parameters():
        if "weight_ih" in name or "weight_hh" in name:
            zeros += int((p == 0).sum())
            total += p.numel()
    return zeros / total if total else 0.0


# --------------------------------------------------------------------------- chip
def dense_standin_artifact(model: nn.Module) -> Any:
    """The chip stand-in of a dense GRU / LSTM model (see the module docstring).

    Every unit of every layer sends an event on every step (``c~ = 1 > theta = 0``); the
    weight matrices are the model's own (LSTM: the first 3 of its 4 gates).
    """
    from snn_egru.artifact import DeploymentArtifact
    from snn_egru.export import sparsify_layers
    from snn_egru.reference import EGRUParams

    rnn = model.rnn
    layers = []
    for layer in rnn.layers:
        hidden = layer.hidden_size
        rows = slice(0, 3 * hidden)  # GRU: r, z, n; LSTM: i, f, g (a lower bound)

        def numpy(t: Tensor, rows: slice = rows) -> np.ndarray:
            return t.detach().cpu().float().numpy()[rows].copy()

        bias_ih = np.zeros(3 * hidden, np.float32)
        bias_hh = np.zeros(3 * hidden, np.float32)
        bias_ih[hidden : 2 * hidden] = -STANDIN_BIAS  # z = 0: c~ = n
        bias_ih[2 * hidden :] = STANDIN_BIAS  # n = tanh(large) = 1
        layers.append(
            EGRUParams(
                weight_ih=numpy(layer.weight_ih_l0),
                weight_hh=numpy(layer.weight_hh_l0),
                bias_ih=bias_ih,
                bias_hh=bias_hh,
                threshold=np.zeros(hidden, np.float32),
            )
        )
    layers = sparsify_layers(layers, sparse=None)
    if hasattr(model, "embedding"):  # the language model: token ids, tied decoder on the host
        io = {
            "input_kind": "embedding",
            "embedding": model.embedding.weight.detach().cpu().float().numpy().copy(),
            "readout_kind": "tied_decoder" if model.decoder is None else "linear",
            "readout_weight": None
            if model.decoder is None
            else model.decoder.weight.detach().cpu().float().numpy().copy(),
            "readout_bias": model.decoder_bias.detach().cpu().float().numpy().copy(),
        }
    else:  # the DVS net: features computed ahead, linear readout
        io = {
            "input_kind": "features",
            "embedding": None,
            "readout_kind": "linear",
            "readout_weight": model.readout.weight.detach().cpu().float().numpy().copy(),
            "readout_bias": model.readout.bias.detach().cpu().float().numpy().copy(),
        }
    return DeploymentArtifact(
        layers=layers,
        readout_source="y",
        metadata={"standin": f"dense {model.config.cell} costed with every unit active"},
        **io,
    )


def artifact_of(model: nn.Module) -> Any:
    """The deployment artifact of a trained EGRU model, or the stand-in of a dense one."""
    from snn_egru.export import export_artifact

    if model.config.cell == "egru":
        return export_artifact(model, allow_zoneout=True)
    return dense_standin_artifact(model)


def _map(artifact: Any, weight_format: str, chips: int, chip_boundaries: Any = ()) -> Any:
    from spinnaker2_backend import Machine, map_network

    return map_network(
        artifact,
        weight_format=weight_format,
        machine=Machine(chips=chips),
        chip_boundaries=chip_boundaries,
    )


def fits_on_chip(
    model: nn.Module, weight_format: str, chips: int, chip_boundaries: Any = ()
) -> tuple[bool, str, int]:
    """``(fits, message, PEs)``: map the model's artifact with the fewest PEs that fit."""
    from spinnaker2_backend import MappingError

    try:
        mapping = _map(artifact_of(model), weight_format, chips, chip_boundaries)
    except MappingError as err:
        return False, str(err).splitlines()[0], 0
    return True, "", int(mapping.report().pes_used)


def chip_cost(
    model: nn.Module,
    inputs: list[np.ndarray],
    *,
    weight_format: str,
    chips: int,
    chip_boundaries: Any = (),
) -> dict[str, Any]:
    """Simulated time, energy and power per step of ``model`` over ``inputs`` (one array
    per independent stream, each run from a zero state: LM one token stream, DVS one
    feature sequence per sample), and what crosses chips per step (``crossings``:
    :mod:`spinnaker2_backend.mapping.crossings`, link time and energy included)."""
    from spinnaker2_backend import run_mapping
    from spinnaker2_backend.mapping.crossings import count_crossings

    artifact = artifact_of(model)
    mapping = _map(artifact, weight_format, chips, chip_boundaries)
    pe_events: dict[int, float] = {}
    report = mapping.report()
    seconds = energy = 0.0
    steps = 0
    events = slots = 0.0
    started = time.perf_counter()
    last = None
    for stream in inputs:
        # record_window=1: memory does not grow with the stream (totals are the same bit for
        # bit: spinnaker2_backend.recording); a whole test split is 82k steps.
        run = run_mapping(mapping, stream, record=False, record_window=1, progress=False)
        seconds += float(run.seconds)
        energy += float(run.energy.total_j)
        steps += int(run.steps)
        events += float(run.counters.total("events"))
        slots += float(run.steps * sum(run.layer_sizes))
        for counters in run.counters.layers:
            for pe, count in zip(counters.pes, counters.per_pe("events")):
                pe_events[int(pe)] = pe_events.get(int(pe), 0.0) + float(count)
        last = run
    if not steps:
        raise ValueError("no steps to run on the chip")
    return {
        "weight_format": weight_format,
        "pes_used": int(report.pes_used),
        "pes_available": int(report.pes_available),
        "chips": chips,
        "steps": steps,
        "streams": len(inputs),
        "seconds_per_token": seconds / steps,
        "energy_j_per_token": energy / steps,
        "average_power_w": energy / seconds if seconds > 0 else 0.0,
        "chip_activity": events / slots if slots else 0.0,
        "clock_hz": float(last.clock_hz) if last is not None else None,
        "standin": model.config.cell != "egru",
        "lower_bound": model.config.cell == "lstm",
        "simulation_s": time.perf_counter() - started,
        "pes_per_chip": [
            sum(1 for sl in mapping.placement.slices if sl.chip == c)
            for c in range(mapping.machine.num_chips)
        ],
        "chip_boundaries": list(mapping.placement.chip_boundaries),
        "crossings": count_crossings(
            mapping,
            {pe: n / steps for pe, n in pe_events.items()},
            cycle_costs=last.cycle_costs,
            energy_costs=last.energy_costs,
            clock_hz=last.clock_hz,
            source="run",
        ).to_dict(),
    }
