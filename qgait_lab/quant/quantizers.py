"""Fake quantizers with one small interface: LSQ, DoReFa and PACT.

Every quantizer is an ``nn.Module`` whose ``forward`` returns the fake-quantized
tensor (same shape and dtype family, values on a uniform grid).  They share:

* ``bits``: the bit-width (an integer from 1 to 16);
* ``gradient``: ``"ste"`` (Eq. 4) or ``"soft"`` (theta_k', Eq. 7);
* ``k``: the soft quantizer's sharpness, a buffer so that it is saved with the
  model and can change during training without recompiling (``set_k``);
* ``soft_forward``: use theta_k instead of round in the forward pass too
  (for notebooks and gradient checks; training uses the hard round);
* ``penalty()``: a regularisation term the trainer adds to the loss (PACT's L2
  on alpha; zero for the others).
"""
from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..ranks import world_size
from . import functional as QF

GradientMode = Literal["ste", "soft"]
GRADIENT_MODES: tuple[str, ...] = get_args(GradientMode)
MAX_BITS = 16


def validate_bits(bits: object, what: str = "bits") -> int:
    """Return ``bits`` as an int, or raise ConfigError naming the option."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        if isinstance(bits, float) and bits.is_integer():
            bits = int(bits)
        else:
            raise ConfigError(f"{what} must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    if not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"{what} must be an integer from 1 to {MAX_BITS} "
                          f"(32 means 'not quantized' and is handled by the policy), got {bits}")
    return bits


def validate_k(k: object) -> float:
    """The paper defines theta_k for k >= 1 (Eq. 6)."""
    try:
        value = float(k)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"k must be a number >= 1, got {k!r}") from None
    if not math.isfinite(value) or value < 1.0:
        raise ConfigError(f"k must be a finite number >= 1 (the soft quantizer theta_k of "
                          f"Eq. 6 is defined for k >= 1), got {k!r}")
    return value


class Quantizer(nn.Module):
    """Base class: bit-width, gradient rule and k."""

    def __init__(self, bits: int, gradient: str = "ste", k: float = 1.0,
                 soft_forward: bool = False) -> None:
        super().__init__()
        self.bits = validate_bits(bits)
        self.set_gradient(gradient)
        self.soft_forward = bool(soft_forward)
        # Run the arithmetic as compiled kernels (see quant.kernels); plain Python
        # state, not saved: it says how to compute, not what the model is.
        self.fused = False
        self.register_buffer("k", torch.tensor(validate_k(k)))

    def set_k(self, k: float) -> None:
        """Set theta_k's sharpness (Eq. 6) in place; k >= 1."""
        self.k.fill_(validate_k(k))

    def set_gradient(self, gradient: str) -> None:
        if gradient not in GRADIENT_MODES:
            raise ConfigError(f"gradient must be one of {GRADIENT_MODES}, got {gradient!r}")
        self.gradient = gradient

    def penalty(self) -> Tensor | float:
        """Regularisation term added to the training loss (none by default)."""
        return 0.0

    def extra_repr(self) -> str:
        extra = f", k={self.k.item():g}" if self.gradient == "soft" else ""
        return f"bits={self.bits}, gradient={self.gradient}{extra}"


class LSQQuantizer(Quantizer):
    """Learned Step size Quantization (Esser et al. 2019), paper Eqs. 2-3.

    ``v_hat = s * round(clamp(v / s, -Q_N, Q_P))`` with a learned step ``s``.

    * Range: ``Q_N = 0, Q_P = 2^b - 1`` for unsigned data and
      ``Q_N = 2^(b-1), Q_P = 2^(b-1) - 1`` for signed data.  ``signed=None``
      decides from the first batch (negative values seen -> signed) and stores
      the decision in the state dict, so a saved model reloads with the same range.
    * Step initialised on the first forward pass to ``2 * mean|v| / sqrt(Q_P)``
      (per output channel when ``channels`` is given, for weights).
    * Step gradient scaled by ``g = 1 / sqrt(N * Q_P)`` where N is the number of
      elements the step covers: the whole weight tensor (or one channel of it),
      or the features of one sample for activations (LSQ's N_W and N_F).
    * Gradient masked to zero outside the clip range; the step is clamped to
      stay positive.  Under ``gradient="soft"`` the step gradient becomes
      ``q - c * theta_k'(c)`` inside the range; see
      :class:`qgait_lab.quant.functional._LsqFakeQuant` for the derivation.
    """

    STEP_FLOOR = 1e-8

    def __init__(self, bits: int, *, is_weight: bool, signed: bool | None = None,
                 channels: int | None = None, gradient: str = "ste", k: float = 1.0,
                 soft_forward: bool = False) -> None:
        super().__init__(bits, gradient, k, soft_forward)
        self.is_weight = bool(is_weight)
        self.channels = channels
        self.step = nn.Parameter(torch.ones(channels if channels else ()))
        # Plain Python state (saved through get/set_extra_state) so that the
        # forward pass never has to read a tensor back from the device.
        self.initialized = False
        self.signed: bool | None = signed

    @property
    def bounds(self) -> tuple[int, int]:
        return QF.lsq_bounds(self.bits, bool(self.signed))

    def _step_view(self, v: Tensor) -> Tensor:
        step = self.step.clamp(min=self.STEP_FLOOR)
        if self.channels:
            return step.view(-1, *([1] * (v.dim() - 1)))
        return step

    @torch.no_grad()
    def initialize(self, v: Tensor) -> None:
        """LSQ's data-driven initialisation ``s = 2 mean|v| / sqrt(Q_P)``.

        Under DDP the ranks see different batches, so the initial steps are
        averaged across ranks to keep the replicas identical.
        """
        v = v.detach()
        if self.signed is None:
            self.signed = bool((v < 0).any())
        q_p = self.bounds[1]
        if self.channels:
            mean_abs = v.abs().reshape(self.channels, -1).mean(dim=1)
        else:
            mean_abs = v.abs().mean()
        step = (2.0 * mean_abs / math.sqrt(q_p)).clamp(min=1e-6)
        if world_size() > 1:
            torch.distributed.all_reduce(step)
            step /= world_size()
        self.step.copy_(step)
        self.initialized = True

    def get_extra_state(self) -> dict:
        return {"initialized": self.initialized,
                "signed": -1 if self.signed is None else int(self.signed)}

    def set_extra_state(self, state: dict) -> None:
        self.initialized = bool(state["initialized"])
        self.signed = None if int(state["signed"]) == -1 else bool(state["signed"])

    def grad_scale_factor(self, v: Tensor) -> float:
        if self.is_weight:
            n = v.numel() // (self.channels or 1)
        else:
            n = v.numel() // max(v.shape[0], 1) if v.dim() > 1 else v.numel()
        return QF.lsq_grad_scale(n, self.bounds[1])

    def forward(self, v: Tensor) -> Tensor:
        if not self.initialized and not v.is_meta:
            self.initialize(v)
        lo, hi = self.bounds
        return QF.lsq_fake_quant(v, self._step_view(v), lo, hi, self.grad_scale_factor(v),
                                 self.gradient, self.k, self.soft_forward, self.fused)

    def integer_codes(self, v: Tensor) -> Tensor:
        """The integers ``round(clamp(v / s))`` that a deployed model would store."""
        lo, hi = self.bounds
        return torch.round(torch.clamp(v / self._step_view(v), lo, hi))

    def extra_repr(self) -> str:
        kind = "weight" if self.is_weight else "activation"
        scope = f"per-channel({self.channels})" if self.channels else "per-tensor"
        return f"{super().extra_repr()}, {kind}, {scope}"


class DoReFaWeightQuantizer(Quantizer):
    """DoReFa-Net weights (Zhou et al. 2016): tanh-normalise into [0, 1], quantize, map to [-1, 1].

    ``w_q = 2 * quantize_b(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1``.  The output
    scale is that of DoReFa itself (values in [-1, 1]); no rescaling is added.
    """

    def forward(self, w: Tensor) -> Tensor:
        t = torch.tanh(w)
        unit = t / (2.0 * t.abs().max().clamp(min=1e-12)) + 0.5
        # unit lies in [0, 1] by construction, so the clip inside unit_fake_quant is a no-op.
        q = QF.unit_fake_quant(unit, self.bits, self.gradient, self.k, self.soft_forward, self.fused)
        return 2.0 * q - 1.0


class DoReFaActQuantizer(Quantizer):
    """DoReFa-Net activations: clip to [0, 1] (zero gradient outside), then quantize."""

    def forward(self, x: Tensor) -> Tensor:
        return QF.unit_fake_quant(x, self.bits, self.gradient, self.k, self.soft_forward, self.fused)


class PACTQuantizer(Quantizer):
    """PACT activations (Choi et al. 2018): clip at a learned alpha, then quantize [0, alpha].

    ``y = clamp(x, 0, alpha)``, ``y_q = round(y * L / alpha) * alpha / L`` with
    ``L = 2^b - 1``.  Following the PACT paper, d y_q / d alpha is 1 where
    ``x >= alpha`` and 0 elsewhere (alpha inside the rounding is treated as a
    constant).  ``penalty()`` returns ``alpha_l2 * alpha^2``, the L2 term PACT
    puts on alpha.  Alpha starts at ``alpha_init`` (10 here, as in the PACT
    paper; implementations use 6 to 20).
    """

    def __init__(self, bits: int, *, alpha_init: float = 10.0, alpha_l2: float = 2e-4,
                 gradient: str = "ste", k: float = 1.0, soft_forward: bool = False) -> None:
        super().__init__(bits, gradient, k, soft_forward)
        if not alpha_init > 0:
            raise ConfigError(f"PACT alpha_init must be positive, got {alpha_init!r}")
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.alpha_l2 = float(alpha_l2)

    def forward(self, x: Tensor) -> Tensor:
        return QF.pact_fake_quant(x, self.alpha.clamp(min=1e-3), self.bits, self.gradient, self.k,
                                  self.soft_forward, self.fused)

    def penalty(self) -> Tensor:
        return self.alpha_l2 * self.alpha.pow(2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha_l2={self.alpha_l2:g}"
