"""NeuroBench adapter: the project's models as first-class NeuroBench models.

NeuroBench 2.3 finds synapses by module type (``nn.Linear``, ``nn.Conv*d``, ``nn.RNNBase``,
``nn.RNNCellBase``) and activations by module type (``nn.ReLU``, ``nn.Sigmoid``, snnTorch's
``SpikingNeuron``), records what those modules receive / return with forward hooks, and
counts operations from the recorded tensors and the modules' weights. An
:class:`~snn_egru.sequence.EGRUSequence` is none of those, so NeuroBench alone counts none of
its synapses and sees none of its events.

:class:`EGRUBenchmarkModel` wraps a model (the language model, the DVS gesture net, or any
module holding ``EGRUSequence`` s) into a :class:`neurobench.models.NeuroBenchModel` whose
network (``__net__()``) is a view of the model plus, per EGRU layer ``k``:

- ``input_l{k}`` and ``recurrent_l{k}``: :class:`SynapseView` s, ``nn.Linear`` modules
  without bias that *share* the layer's ``weight_ih`` / ``weight_hh`` Parameters (nothing
  is copied, the model's ``state_dict`` is unchanged). Every forward pass of the
  ``EGRUSequence`` records into them what the two matrix products of the layer read: the
  layer input ``x_t`` and the previous events ``y_{t-1}`` (``y_{-1}`` = the incoming
  state's ``y``) of every step. The views' own matrix product is never run by the model;
  NeuroBench computes its operation counts from the recorded inputs and the weights, as for
  any ``nn.Linear``;
- ``events_l{k}``: an :class:`EventView` (an identity module registered as an activation
  module) that returns the layer's events ``y``, for ``ActivationSparsity``;
- for the language model with a tied decoder (the embedding table used as the readout
  matrix, which NeuroBench cannot see): a ``readout`` :class:`SynapseView` fed with the last
  layer's events.

For :class:`~snn_egru.neuron.EGRU` neurons (one call per step) the two views record each
step's ``x_t`` and ``y_{t-1}``; their events NeuroBench sees itself (an EGRU is a
``SpikingNeuron``). Modules NeuroBench already supports are left to it (the DVS net's CNN
head and linear readout). So NeuroBench's own ``Footprint``, ``ConnectionSparsity``,
``ActivationSparsity``, ``SynapticOperations`` and ``ClassificationAccuracy`` run
unchanged; the counts equal
:mod:`snn_egru.sparsity`'s (``Effective_MACs`` per sample = event-driven MACs per token
times the steps per sample; ``Dense`` = dense MACs; activation sparsity = the fraction of
zero events), which the tests check. EGRU events are graded (``y = o * c~``), so NeuroBench
counts them as MACs, not ACs.

Data follows NeuroBench's convention (batch-major, ``(B, T, ...)``); every batch starts from
a zero state (the models take ``state=None``; EGRU neurons with ``init_hidden=True`` inside
the model are reset with :func:`snn_egru.utils.reset`).

NeuroBench is a test extra of this project: ``pip install --no-deps neurobench==2.3.0``
(its metadata requires torchaudio, which has no release for the torch this project uses; its
metrics do not import torchaudio).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from snn_egru.errors import UserError
from snn_egru.sequence import EGRUSequence
from snn_egru.utils import reset

try:
    from neurobench.models import NeuroBenchModel
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "snn_egru.neurobench needs NeuroBench: pip install --no-deps neurobench==2.3.0 "
        "(part of this project's test setup; see the Makefile's setup step)"
    ) from exc

__all__ = [
    "ArtifactNet",
    "EGRUBenchmarkModel",
    "artifact_benchmark_model",
    "EventView",
    "SynapseView",
    "dvs_forward",
    "lm_forward",
    "neurobench_table",
]


class SynapseView(nn.Linear):
    """A bias-free ``nn.Linear`` sharing an existing ``(out, in)`` weight Parameter.

    The model never calls it; :meth:`record` hands an input to its forward pre-hooks (what
    NeuroBench's connection hooks listen to) without computing the product.
    """

    def __init__(self, weight: nn.Parameter, name: str) -> None:
        nn.Module.__init__(self)
        self.out_features, self.in_features = weight.shape
        self.weight = weight
        self.register_parameter("bias", None)
        self.view_of = name

    def record(self, x: Tensor) -> None:
        """Give ``x (..., in_features)`` to the registered forward pre-hooks."""
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                hook(self, (x,), {})
            else:
                hook(self, (x,))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, view of {self.view_of}"


class EventView(nn.Module):
    """Identity module standing for one EGRU layer's events (an activation for NeuroBench)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.view_of = name

    def forward(self, y: Tensor) -> Tensor:
        return y

    def extra_repr(self) -> str:
        return f"events of {self.view_of}"


def dvs_forward(model: nn.Module, data: Tensor) -> Tensor:
    """:class:`~snn_egru.models.dvs.DVSGestureNet` on NeuroBench data: frames
    ``(B, T, C, S, S)`` or precomputed features ``(B, T, F)`` -> predicted labels ``(B,)``."""
    if data.dim() == 3:
        out = model.forward_features(data, batch_first=True)
    else:
        out = model(data, batch_first=True)
    return out.logits.argmax(dim=-1)


def lm_forward(model: nn.Module, data: Tensor) -> Tensor:
    """:class:`~snn_egru.models.lm.EGRULanguageModel` on NeuroBench data: tokens ``(B, T)``
    -> predicted next tokens ``(B, T)`` (``ClassificationAccuracy`` = top-1 accuracy)."""
    return model(data.t().contiguous()).logits.argmax(dim=-1).t()


class ArtifactNet(nn.Module):
    """A deployment artifact as a batched PyTorch model NeuroBench can read.

    ``[embedding] -> EGRUSequence -> [readout nn.Linear]`` with the artifact's weights
    (dense, float32, thresholds frozen); the readout is a real ``nn.Linear`` (also for a tied
    decoder: a copy of the table), so NeuroBench counts it like any layer.

    ``forward(batch)``: token ids ``(B, T)`` (``input_kind="embedding"``) or features
    ``(B, T, I)``, batch-major, from a zero state -> per-step readout ``(B, T, O)`` (the
    events ``(B, T, H_last)`` without a readout). ``readout_source="trace"`` reads out the
    low-pass trace of the events, as the artifact does.
    """

    def __init__(self, artifact: Any) -> None:
        super().__init__()
        from snn_egru.rebuild import torch_model_from_artifact

        if artifact.readout_kind == "adaptive":
            raise UserError(
                "NeuroBench's table counts the readout as one linear layer; this artifact's "
                "readout is an adaptive softmax (computed on the host): benchmark a "
                "full-softmax model (`snn-egru demo --adaptive-softmax none`)"
            )
        rebuilt = torch_model_from_artifact(artifact)
        self.input_kind = artifact.input_kind
        self.readout_source = artifact.readout_source
        self.rnn = rebuilt.rnn
        self.rnn.batch_first = True
        self.embedding = None
        if artifact.input_kind == "embedding":
            self.embedding = nn.Embedding.from_pretrained(rebuilt.embedding.clone(), freeze=True)
        self.readout = None
        if rebuilt.readout_weight is not None:
            out_size, hidden = rebuilt.readout_weight.shape
            self.readout = nn.Linear(hidden, out_size, bias=rebuilt.readout_bias is not None)
            with torch.no_grad():
                self.readout.weight.copy_(rebuilt.readout_weight)
                if rebuilt.readout_bias is not None:
                    self.readout.bias.copy_(rebuilt.readout_bias)
            self.readout.requires_grad_(False)
        self.eval()

    def deployment_io(self) -> dict[str, Any]:
        """The readout, in :mod:`snn_egru.export`'s protocol (for :class:`SparsityProbe`)."""
        if self.readout is None:
            return {"readout_kind": "none"}
        return {
            "readout_kind": "linear",
            "readout_weight": self.readout.weight.detach().cpu().numpy().copy(),
        }

    def forward(self, batch: Tensor) -> Tensor:
        x = self.embedding(batch) if self.embedding is not None else batch
        y, _ = self.rnn(x.to(self.rnn.param_dtype))
        if self.readout_source == "trace":
            from snn_egru.models.dvs import low_pass_trace

            y = low_pass_trace(y.transpose(0, 1)).transpose(0, 1)
        return y if self.readout is None else self.readout(y)


def _artifact_forward(net: ArtifactNet, batch: Tensor) -> Tensor:
    """Predictions of an :class:`ArtifactNet`: next tokens ``(B, T)`` for a language model,
    classes ``(B,)`` for features (mean over time of the per-step logits for ``"y"``, the
    last step for ``"trace"``)."""
    logits = net(batch)
    if net.input_kind == "embedding":
        return logits.argmax(dim=-1)
    if net.readout_source == "trace":
        return logits[:, -1].argmax(dim=-1)
    return logits.mean(dim=1).argmax(dim=-1)


def artifact_benchmark_model(artifact: Any) -> EGRUBenchmarkModel:
    """The NeuroBench model of a :class:`~snn_egru.artifact.DeploymentArtifact` (or its path)."""
    if not hasattr(artifact, "layers"):
        from snn_egru.artifact import load_artifact

        artifact = load_artifact(artifact)
    return EGRUBenchmarkModel(ArtifactNet(artifact), forward=_artifact_forward)


def _default_forward(model: nn.Module) -> Callable[[nn.Module, Tensor], Tensor]:
    from snn_egru.models.dvs import DVSGestureNet
    from snn_egru.models.lm import EGRULanguageModel

    if isinstance(model, DVSGestureNet):
        return dvs_forward
    if isinstance(model, EGRULanguageModel):
        return lm_forward
    raise TypeError(
        f"no default NeuroBench forward for {type(model).__name__}: pass "
        "forward=lambda model, batch: predictions (batch is batch-major, (B, T, ...))"
    )


class _BenchNet(nn.Module):
    """What NeuroBench sees: the model and the views of its EGRU layers."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.synapses = nn.ModuleDict()
        self.events = nn.ModuleDict()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


class EGRUBenchmarkModel(NeuroBenchModel):
    """A NeuroBench model around a module with EGRU layers (see the module docstring).

    Args:
        model: e.g. :class:`~snn_egru.models.lm.EGRULanguageModel`,
            :class:`~snn_egru.models.dvs.DVSGestureNet`, or any module holding
            :class:`~snn_egru.sequence.EGRUSequence` s. Put in evaluation mode.
        forward: ``forward(model, batch) -> predictions`` on NeuroBench's batch-major data;
            default :func:`lm_forward` / :func:`dvs_forward` for the two project models.

    The model's ``state_dict`` is untouched; the views only share its Parameters (and are
    removed by :meth:`close`).
    """

    def __init__(
        self,
        model: nn.Module,
        forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.forward = forward or _default_forward(model)
        self.net = _BenchNet(model)
        self._handles: list[Any] = []
        self.add_activation_module(EventView)
        import snntorch

        self.add_activation_module(snntorch.SpikingNeuron)
        from snn_egru.neuron import EGRU

        sequences = [(n, m) for n, m in model.named_modules() if isinstance(m, EGRUSequence)]
        neurons = [(n, m) for n, m in model.named_modules() if isinstance(m, EGRU)]
        if not sequences and not neurons:
            raise ValueError(f"{type(model).__name__} holds no EGRUSequence or EGRU")
        self._neuron_views: dict[int, tuple[SynapseView, SynapseView]] = {}
        for name, neuron in neurons:
            key = (name or "egru").replace(".", "_")
            views = (
                SynapseView(neuron.weight_ih, f"{name or 'egru'}.weight_ih"),
                SynapseView(neuron.weight_hh, f"{name or 'egru'}.weight_hh"),
            )
            self.net.synapses[f"input_{key}"], self.net.synapses[f"recurrent_{key}"] = views
            self._neuron_views[id(neuron)] = views
            # its events are seen by NeuroBench itself (an EGRU is a snnTorch SpikingNeuron)
            self._handles.append(
                neuron.register_forward_pre_hook(self._neuron_pre_hook, with_kwargs=True)
            )
        self._layers: dict[int, list[tuple[SynapseView, SynapseView, EventView]]] = {}
        for name, seq in sequences:
            label = name or "rnn"
            views = []
            for k in range(seq.num_layers):
                key = f"{label.replace('.', '_')}_l{k}"
                input_view = SynapseView(getattr(seq, f"weight_ih_l{k}"), f"{label}.weight_ih_l{k}")
                rec_view = SynapseView(getattr(seq, f"weight_hh_l{k}"), f"{label}.weight_hh_l{k}")
                events = EventView(f"{label} layer {k}")
                self.net.synapses[f"input_{key}"] = input_view
                self.net.synapses[f"recurrent_{key}"] = rec_view
                self.net.events[f"events_{key}"] = events
                views.append((input_view, rec_view, events))
            self._layers[id(seq)] = views
            self._handles.append(seq.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            self._handles.append(seq.register_forward_hook(self._post_hook, with_kwargs=True))
        self._readout = self._readout_view(model, sequences)
        self._asked_all_layers: list[bool] = []

    def _readout_view(self, model: nn.Module, sequences: list) -> tuple | None:
        """The LM's tied decoder (the embedding table as a matrix) as a synapse view."""
        from snn_egru.models.lm import EGRULanguageModel

        if not isinstance(model, EGRULanguageModel):
            return None
        if model.decoder is None:
            view = SynapseView(model.embedding.weight, "embedding.weight (tied decoder)")
            self.net.synapses["readout"] = view
            return (id(model.rnn), view.record)
        decoder = model.decoder  # an nn.Linear NeuroBench sees but the model calls as F.linear
        return (id(model.rnn), lambda y: SynapseView.record(decoder, y))

    # ------------------------------------------------------------------ hooks
    def _neuron_pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        """One step of an :class:`~snn_egru.neuron.EGRU`: record ``x_t`` and ``y_{t-1}``."""
        x = (args[0] if args else kwargs["x"]).detach()
        y = args[1] if len(args) > 1 else kwargs.get("y")
        if module.init_hidden:
            y = module.y
        elif isinstance(y, tuple):
            y = y[0]
        shape = (*x.shape[:-1], module.hidden_size)
        if not isinstance(y, Tensor) or tuple(y.shape) != shape:
            y = x.new_zeros(shape)  # a fresh (or re-shaped) state starts at 0
        input_view, rec_view = self._neuron_views[id(module)]
        input_view.record(x)
        rec_view.record(y.detach())

    def _pre_hook(self, module: EGRUSequence, args: tuple, kwargs: dict) -> tuple:
        self._asked_all_layers.append(bool(kwargs.get("return_all_layers", False)))
        kwargs = dict(kwargs, return_all_layers=True)
        return args, kwargs

    def _post_hook(self, module: EGRUSequence, args: tuple, kwargs: dict, output: tuple) -> Any:
        asked = self._asked_all_layers.pop() if self._asked_all_layers else True
        x = args[0] if args else kwargs["x"]
        state = args[1] if len(args) > 1 else kwargs.get("state")
        layer_outputs = output[2]
        time_dim = 1 if (module.batch_first and x.dim() == 3) else 0
        if state is not None and isinstance(state, Tensor):
            state = [state]
        with torch.no_grad():
            layer_input = x.detach()
            for k, (input_view, rec_view, events) in enumerate(self._layers[id(module)]):
                ys = layer_outputs[k].detach()
                y0 = _initial_events(state, k, ys, time_dim)
                previous = torch.cat([y0, ys.narrow(time_dim, 0, ys.shape[time_dim] - 1)], time_dim)
                input_view.record(layer_input)
                rec_view.record(previous)
                events(ys)
                layer_input = ys
            if self._readout is not None and self._readout[0] == id(module):
                self._readout[1](layer_input)
        if asked:
            return output
        return (output[0], output[1], *output[3:])

    # ------------------------------------------------------------------ NeuroBenchModel
    def __call__(self, batch: Tensor) -> Tensor:
        """Predictions for one batch-major batch, from a zero state."""
        reset(self.model)  # EGRU / snnTorch neurons kept inside the model (init_hidden)
        with torch.no_grad():
            return self.forward(self.model, batch)

    def __net__(self) -> nn.Module:
        return self.net

    def close(self) -> None:
        """Remove the hooks from the model's EGRUSequences (the views become inert)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _initial_events(state: Any, k: int, ys: Tensor, time_dim: int) -> Tensor:
    """The incoming state's events of layer ``k`` with a time axis of length 1 (zeros if none)."""
    shape = list(ys.shape)
    shape[time_dim] = 1
    if state is None:
        return ys.new_zeros(shape)
    layer_state = state[k]
    y0 = getattr(layer_state, "y", None)
    if y0 is None:
        y0 = layer_state[0] if isinstance(layer_state, (tuple, list)) else layer_state
    return y0.detach().reshape(shape).to(ys.dtype)


def neurobench_table(results: dict[str, Any], *, title: str | None = None) -> str:
    """NeuroBench's results dict as an aligned two-column text table (nested dicts flattened)."""
    rows: list[tuple[str, str]] = []
    for name, value in results.items():
        if isinstance(value, dict):
            rows += [(f"{name}.{key}", _fmt(v)) for key, v in value.items()]
        else:
            rows.append((name, _fmt(value)))
    width = max(len(name) for name, _ in rows) if rows else 0
    lines = [title, "=" * len(title)] if title else []
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
