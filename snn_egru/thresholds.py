"""Per-unit EGRU thresholds ``theta``: learnable or frozen, two parametrisations.

Two initialisations exist in the public reference implementation (EvNN):

``"beta"`` (EvNN v0.2, the default)
    ``theta`` itself is stored (parameter ``theta``), drawn from
    ``Beta(a, b)`` with ``b = 3`` and ``a = 3 m / (1 - m)`` so that ``E[theta] = m``
    (``mean``, default 0.3; the LM recipe uses 0.01 and freezes ``theta``). After every
    optimiser update can move ``theta`` out of ``[0, 1]``; like EvNN, every forward pass
    clamps the stored ``theta`` back into ``[0, 1]`` in place (under ``no_grad``, exactly
    what an optimiser step does to a parameter) before using it, so a training loop never
    crashes on a threshold that drifted to 1.0001. Call :meth:`Threshold.clamp_` (or
    :func:`snn_egru.utils.clamp_thresholds` on a whole model) after ``optimizer.step()`` to
    make the clamp explicit (e.g. before saving a checkpoint). NaN thresholds still raise.

``"sigmoid"`` (EvNN v0.1)
    a logit is stored (parameter ``logit``; EvNN v0.1 calls it ``thr_reparam``) and
    ``theta = sigmoid(logit)``, always in ``(0, 1)``; no clamping is needed. As in EvNN v0.1
    the logit is drawn from ``Normal(logit(m), sqrt(2))`` (``m`` = ``mean`` is the median of
    ``theta``; v0.1's ``thr_mean=0`` is ``m = 0.5``, whose mean is also 0.5 by symmetry).
    Without an explicit ``mean``, ``"sigmoid"`` uses :data:`V01_THRESHOLD_MEAN` (0.5).

Whatever the parametrisation, :meth:`Threshold.effective` (also ``Threshold()``) gives the
effective ``theta`` tensor of shape ``(H,)``, differentiable with respect to the stored
parameter.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

__all__ = [
    "BETA_CONCENTRATION",
    "DEFAULT_THRESHOLD_MEAN",
    "THRESHOLD_INITS",
    "V01_LOGIT_STD",
    "V01_THRESHOLD_MEAN",
    "Threshold",
    "ThresholdInit",
    "beta_threshold_sample",
]

ThresholdInit = Literal["beta", "sigmoid"]
#: The supported threshold parametrisations (those of :data:`ThresholdInit`).
THRESHOLD_INITS: tuple[str, ...] = get_args(ThresholdInit)
#: Mean of the initial thresholds (EvNN v0.2 default ``thr_mean``).
DEFAULT_THRESHOLD_MEAN = 0.3
#: Second shape parameter ``b`` of the Beta initialisation (EvNN v0.2).
BETA_CONCENTRATION = 3.0
#: Median (and mean) of the initial thresholds of the ``"sigmoid"`` parametrisation (EvNN
#: v0.1: ``thr_reparam ~ Normal(thr_mean=0, sqrt(2))``, so ``theta = sigmoid(.)`` has mean 0.5).
V01_THRESHOLD_MEAN = 0.5
#: Standard deviation of the v0.1 logit draw (EvNN v0.1: ``sqrt(2)``).
V01_LOGIT_STD = 2.0**0.5
#: Initial thresholds are kept this far from 0 and 1 before taking the logit.
_LOGIT_EPS = 1e-4


def beta_threshold_sample(
    hidden_size: int,
    mean: float = DEFAULT_THRESHOLD_MEAN,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw ``hidden_size`` thresholds from ``Beta(3 m / (1 - m), 3)`` (mean ``m``).

    Uses the Gamma construction ``X / (X + Y)``, ``X ~ Gamma(a)``, ``Y ~ Gamma(b)`` with
    torch's Gamma sampler (``torch._standard_gamma``, what ``torch.distributions.Beta``
    samples with), so that an explicit ``generator`` can make the draw reproducible.
    """
    if not 0.0 < mean < 1.0:
        raise ValueError(f"threshold_mean must be in (0, 1), got {mean}")
    alpha = BETA_CONCENTRATION * mean / (1.0 - mean)
    dtype = dtype or torch.get_default_dtype()
    conc_a = torch.full((hidden_size,), alpha, dtype=torch.float64)
    conc_b = torch.full((hidden_size,), BETA_CONCENTRATION, dtype=torch.float64)
    if generator is None:
        x, y = torch._standard_gamma(conc_a), torch._standard_gamma(conc_b)
    else:
        x = torch._standard_gamma(conc_a, generator=generator)
        y = torch._standard_gamma(conc_b, generator=generator)
    return (x / (x + y)).to(dtype)


def _v01_threshold_sample(
    hidden_size: int,
    median: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """EvNN v0.1's draw: ``sigmoid(Normal(logit(median), sqrt(2)))``, ``(hidden_size,)``."""
    if not 0.0 < median < 1.0:
        raise ValueError(f"threshold_mean must be in (0, 1), got {median}")
    loc = torch.logit(torch.tensor(median, dtype=torch.float64))
    noise = torch.randn(hidden_size, generator=generator, dtype=torch.float64)
    theta = torch.sigmoid(loc + V01_LOGIT_STD * noise)
    return theta.clamp(_LOGIT_EPS, 1.0 - _LOGIT_EPS).to(dtype or torch.get_default_dtype())


def _as_threshold_vector(value: float | Tensor, hidden_size: int, dtype: torch.dtype) -> Tensor:
    theta = torch.as_tensor(value, dtype=dtype).detach().clone()
    if theta.ndim == 0:
        theta = theta.expand(hidden_size).clone()
    if theta.shape != (hidden_size,):
        raise ValueError(
            f"threshold must be a scalar or have shape ({hidden_size},) (one per unit), "
            f"got shape {tuple(theta.shape)}"
        )
    if not torch.all(torch.isfinite(theta)):
        raise ValueError("threshold contains NaN or infinite values")
    return theta


class Threshold(nn.Module):
    """Per-unit thresholds of one EGRU layer.

    Args:
        hidden_size: number of units ``H``.
        init: ``"beta"`` (store ``theta``, clamp to ``[0, 1]``) or ``"sigmoid"`` (store a
            logit, ``theta = sigmoid(logit)``).
        mean: mean ``m`` of the Beta initialisation (``"beta"``), or median of
            ``sigmoid(Normal(logit(m), sqrt 2))`` (``"sigmoid"``), in ``(0, 1)``; ``None``:
            :data:`DEFAULT_THRESHOLD_MEAN` for ``"beta"``, :data:`V01_THRESHOLD_MEAN` for
            ``"sigmoid"``.
        learnable: ``True`` registers an ``nn.Parameter``; ``False`` a buffer (frozen, still
            saved in the ``state_dict``).
        value: explicit initial ``theta`` (scalar or ``(H,)``) instead of a random draw; must be
            in ``[0, 1]`` for ``"beta"``, in ``(0, 1)`` for ``"sigmoid"``.
        generator: random generator for the draw.
        dtype: floating-point type (default: torch's default dtype).
        minimum: lowest allowed ``theta`` (default 0); below 0 only for a frozen ``"beta"``
            threshold (the ``dense`` bottleneck layer, :mod:`snn_egru.bottleneck_layers`, sends
            every step with ``theta < -1``).

    Attributes:
        theta: ``(H,)`` the stored thresholds (``init="beta"``), or
        logit: ``(H,)`` the stored logits (``init="sigmoid"``).
    """

    minimum: float = 0.0  # the class default (modules pickled before it had none)

    def __init__(
        self,
        hidden_size: int,
        *,
        init: ThresholdInit = "beta",
        mean: float | None = None,
        learnable: bool = True,
        value: float | Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        minimum: float = 0.0,
    ) -> None:
        super().__init__()
        if minimum > 0.0 or (minimum < 0.0 and (init != "beta" or learnable)):
            raise ValueError(
                f"minimum {minimum} must be <= 0, and below 0 only for a frozen 'beta' "
                "threshold (a constrained bottleneck layer, snn_egru.bottleneck_layers)"
            )
        #: lowest allowed ``theta`` (``"beta"``): 0, or below 0 for a frozen threshold
        self.minimum = float(minimum)
        if init not in THRESHOLD_INITS:
            raise ValueError(f"threshold_init must be one of {THRESHOLD_INITS}, got {init!r}")
        if mean is None:
            mean = DEFAULT_THRESHOLD_MEAN if init == "beta" else V01_THRESHOLD_MEAN
        if not (isinstance(hidden_size, int) and hidden_size > 0):
            raise ValueError(f"hidden_size must be a positive int, got {hidden_size!r}")
        if not 0.0 < mean < 1.0:
            raise ValueError(f"threshold_mean must be in (0, 1), got {mean}")
        dtype = dtype or torch.get_default_dtype()
        self.init = init
        self.mean = float(mean)
        self.learnable = bool(learnable)
        self.hidden_size = hidden_size
        if value is None and init == "sigmoid":
            theta0 = _v01_threshold_sample(hidden_size, mean, generator=generator, dtype=dtype)
        elif value is None:
            theta0 = beta_threshold_sample(hidden_size, mean, generator=generator, dtype=dtype)
        else:
            theta0 = _as_threshold_vector(value, hidden_size, dtype)
        self._check_range(theta0, what="initial threshold")
        raw = self._to_raw(theta0)
        if learnable:
            self.register_parameter(self.raw_name, nn.Parameter(raw))
        else:
            self.register_buffer(self.raw_name, raw)

    @property
    def raw_name(self) -> str:
        """Name of the stored tensor: ``"theta"`` (beta) or ``"logit"`` (sigmoid)."""
        return "theta" if self.init == "beta" else "logit"

    @property
    def raw(self) -> Tensor:
        """The stored tensor (``theta`` or ``logit``)."""
        return getattr(self, self.raw_name)

    def _to_raw(self, theta: Tensor) -> Tensor:
        if self.init == "beta":
            return theta
        clipped = theta.clamp(_LOGIT_EPS, 1.0 - _LOGIT_EPS)
        return torch.log(clipped) - torch.log1p(-clipped)

    def _check_range(self, theta: Tensor, *, what: str) -> None:
        if self.init == "beta":
            low, high = float(theta.min()), float(theta.max())
            if low < self.minimum or high > 1.0:
                raise ValueError(
                    f"{what} must lie in [{self.minimum:g}, 1] (threshold_init='beta'), got "
                    f"min {low:.4g}, "
                    f"max {high:.4g}; call clamp_thresholds(model) (or .clamp_()) after "
                    "every optimizer.step()"
                )
        elif bool(((theta <= 0.0) | (theta >= 1.0)).any()):
            raise ValueError(
                f"{what} must lie in (0, 1) for threshold_init='sigmoid' "
                f"(theta = sigmoid(logit)), got min {float(theta.min()):.4g}, "
                f"max {float(theta.max()):.4g}"
            )

    def effective(self) -> Tensor:
        """The effective thresholds ``theta`` ``(H,)`` (differentiable)."""
        if self.init == "beta":
            return self.theta
        return torch.sigmoid(self.logit)

    def forward(self) -> Tensor:
        """Same as :meth:`effective`."""
        return self.effective()

    def check(self, *, name: str = "threshold") -> None:
        """Raise ``ValueError`` if ``theta`` is NaN; clamp ``"beta"`` thresholds into [0, 1].

        Called by every forward pass. A ``theta`` an optimiser step moved out of ``[0, 1]``
        is clamped in place, as EvNN's forward does (``thr.data.clamp_(0, 1)``), instead of
        raising.
        """
        raw = self.raw.detach()
        if not bool(torch.isfinite(raw).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        if self.init == "beta" and bool(((raw < self.minimum) | (raw > 1.0)).any()):
            self.clamp_()

    @torch.no_grad()
    def clamp_(self) -> Threshold:
        """Clamp ``theta`` to ``[0, 1]`` in place (``"beta"``; no-op for ``"sigmoid"``).

        Call after every ``optimizer.step()``. Returns ``self``.
        """
        if self.init == "beta":
            self.theta.clamp_(self.minimum, 1.0)
        return self

    @torch.no_grad()
    def set_(self, theta: float | Tensor) -> Threshold:
        """Set the effective thresholds (scalar or ``(H,)``) in place; returns ``self``."""
        value = _as_threshold_vector(theta, self.hidden_size, self.raw.dtype)
        self._check_range(value, what="threshold")
        self.raw.copy_(self._to_raw(value).to(self.raw.device))
        return self

    def extra_repr(self) -> str:
        return (
            f"{self.hidden_size}, init={self.init!r}, mean={self.mean}, learnable={self.learnable}"
        )
