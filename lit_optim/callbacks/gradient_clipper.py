"""GradientClipper: clip by norm, by value, or adaptively (AutoClip), and log what it did."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast

import lightning as L
import torch
from typing_extensions import override

from lit_optim.callbacks._grads import (
    grad_norms,
    grads_of,
    member_norms,
    named_trainable,
    norms,
    with_grads,
)
from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.torch_private import foreach_clamp_, foreach_mul_
from lit_optim.catalog.trainer_info import is_logging_step

__all__ = ["GradientClipper"]

CLIP_MODES = ("norm", "value", "adaptive")


class GradientClipper(L.Callback):
    """Clip gradients before each optimizer step.

    Modes:
        ``norm``: rescale all gradients so their global ``norm_type``-norm is ≤ ``max_norm``.
        ``value``: clamp every element to [-clip_value, clip_value].
        ``adaptive``: AutoClip (Seetharaman et al. 2020): clip the global norm to the
            ``percentile``-th percentile of the norms seen so far (last ``history`` steps).
            Chosen over unit-wise AGC because it needs no per-layer rule (AGC must exempt the
            classifier and was tuned for normalizer-free nets) and has one knob.

    Hook: ``on_before_optimizer_step``, where Lightning has unscaled AMP gradients (so the
    threshold means the same under fp16/bf16 as in fp32) and the optimizer has not run yet.
    Everything stays on the device; the pre-clip norm (``grad_norm``) is logged on logging
    steps and the share of clipped steps (``grad_clipped_frac``) once per epoch.

    Use it instead of ``Trainer(gradient_clip_val=...)`` when you want the adaptive mode, a
    p-norm other than 2, or the logged norms; the Trainer's clipping does norm/value only and
    logs nothing. Don't use both at once: the Trainer clips after this callback.
    """

    def __init__(
        self,
        mode: Literal["norm", "value", "adaptive"] = "norm",
        *,
        max_norm: float = 1.0,
        norm_type: float = 2.0,
        clip_value: float | None = None,
        percentile: float = 10.0,
        history: int = 1000,
    ) -> None:
        if mode not in CLIP_MODES:
            raise ConfigError(f"mode must be one of {'|'.join(CLIP_MODES)}, got {mode!r}")
        check_number("max_norm", max_norm, low=0, low_open=True)
        check_number("norm_type", norm_type, low=0, low_open=True, allow_inf=True)
        if mode == "value" and clip_value is None:
            raise ConfigError("mode 'value' needs clip_value > 0, got None")
        if mode == "value":
            check_number("clip_value", clip_value, low=0, low_open=True)
        elif clip_value is not None:  # it would be ignored, silently
            limit = "max_norm" if mode == "norm" else "percentile"
            raise ConfigError(
                f"clip_value applies to mode 'value' only; mode {mode!r} clips by "
                f"{limit}: remove clip_value, or set mode: value"
            )
        check_number("percentile", percentile, low=0, high=100, low_open=True)
        check_count("history", history)
        self.mode, self.max_norm, self.norm_type = mode, float(max_norm), float(norm_type)
        self.clip_value, self.percentile, self.history = clip_value, percentile, history
        # Device state, checkpointed: the AutoClip norm history and the clip counters.
        self._norms: torch.Tensor | None = None  # ring buffer, NaN = empty slot
        self._seen = 0
        self._clipped = torch.zeros(())
        self._steps = 0
        self.last_norm: torch.Tensor | None = None
        self.last_threshold: torch.Tensor | None = None
        self._named: list = []

    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        self._named = named_trainable(pl_module)

    @override
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.sanity_checking:
            return
        _, params = with_grads(self._named)
        if not params:  # e.g. a step the NonFiniteGuard dropped
            return
        # torch.nn.utils.get_total_norm / clip_grads_with_norm_ compute the same, but regroup
        # the tensors by device and dtype on every call (a few % of a small MLP's step on CPU:
        # bench/README.md, costs); one model's gradients share a device: plain foreach.
        total = torch.linalg.vector_norm(
            grad_norms(trainer, params, self.norm_type), self.norm_type
        )
        self._clip(grads_of(params), total, lambda: norms(grads_of(params), math.inf))
        if is_logging_step(trainer):
            pl_module.log("grad_norm", total, on_step=True, on_epoch=False)

    def clip_members(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """The population form: ``grads`` have a leading member axis, and each member is
        clipped as this clipper clips a one-by-one run of it (its own global norm, its own
        AutoClip history, its own clip counter). Returns the members' pre-clip norms."""
        total = torch.linalg.vector_norm(member_norms(grads, self.norm_type), self.norm_type, dim=0)
        self._clip(grads, total, lambda: member_norms(grads, math.inf))
        return total

    def _clip(
        self, grads: list[torch.Tensor], total: torch.Tensor, max_abs: Callable[[], torch.Tensor]
    ) -> None:
        """Clip ``grads`` given their global norm ``total`` (one run's scalar, or one per
        member); ``max_abs``: the per-tensor largest elements (mode value's counter)."""
        if self._clipped.shape != total.shape or self._clipped.device != total.device:
            self._clipped = torch.zeros_like(total)  # the first step (or the first of members)
        if self.mode == "value":
            limit = cast(float, self.clip_value)  # mode value has one: checked in __init__
            clipped = max_abs().amax(dim=0) > limit
            foreach_clamp_(grads, -limit, limit)
        else:
            threshold = self._threshold(total) if self.mode == "adaptive" else self.max_norm
            clipped = total > threshold
            # On an accelerator, multiply by min(1, threshold/norm) unconditionally: a host
            # `if` would wait for the device. On CPU there is nothing to wait for, and
            # skipping the multiply when nothing is clipped is the cheaper path.
            if total.device.type != "cpu" or bool(clipped.any()):
                coef = (threshold / (total + 1e-6)).clamp(max=1.0).to(grads[0].dtype)
                if coef.ndim == 0:
                    foreach_mul_(grads, coef)
                else:  # one coefficient per member, along each tensor's leading axis
                    for grad in grads:
                        grad.mul_(coef.view(-1, *[1] * (grad.ndim - 1)))
            self.last_threshold = torch.as_tensor(threshold)
        self._clipped = self._clipped + clipped
        self._steps += 1
        self.last_norm = total

    def _threshold(self, total: torch.Tensor) -> torch.Tensor:
        if (
            self._norms is None
            or self._norms.device != total.device
            or self._norms.shape[1:] != total.shape
        ):
            # In the norms' own dtype: a float64 run's threshold keeps float64's precision.
            self._norms = torch.full(
                (self.history, *total.shape), float("nan"), dtype=total.dtype, device=total.device
            )
        self._norms[self._seen % self.history] = total.detach()
        self._seen += 1
        return torch.nanquantile(self._norms, self.percentile / 100, dim=0)

    def keep_members(self, keep: torch.Tensor) -> None:
        """The population dropped the members where ``keep`` is False: their state goes."""
        if self._clipped.ndim:
            self._clipped = self._clipped[keep.to(self._clipped.device)]
        if self._norms is not None and self._norms.ndim == 2:
            self._norms = self._norms[:, keep.to(self._norms.device)]

    def join_members(self, n: int) -> None:
        """``n`` members joined the population after the present ones: no norm seen yet, no
        step clipped (their AutoClip history fills as a fresh run's does; the quantile skips
        the empty slots)."""
        if self._clipped.ndim:
            self._clipped = torch.cat([self._clipped, self._clipped.new_zeros(n)])
        if self._norms is not None and self._norms.ndim == 2:
            self._norms = torch.cat(
                [self._norms, self._norms.new_full((self.history, n), float("nan"))], dim=1
            )

    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s AutoClip history and clip count, as copies (None where the
        clipper has not seen a population's step yet)."""
        return {
            "clipped": self._clipped[member].clone() if self._clipped.ndim else None,
            "norms": (
                self._norms[:, member].clone()
                if self._norms is not None and self._norms.ndim == 2
                else None
            ),
            "seen": self._seen,
        }

    def load_member_state(self, member: int, saved: dict[str, Any], size: int) -> None:
        """Position ``member`` (of ``size`` members) takes ``saved`` (``member_state``); a
        clipper that has not seen a step yet (a population built afresh) makes its state."""
        if saved["clipped"] is not None:
            if not self._clipped.ndim:
                self._clipped = saved["clipped"].new_zeros(size)
            self._clipped[member] = saved["clipped"]
        if saved["norms"] is not None:
            if self._norms is None or self._norms.ndim != 2:
                self._norms = saved["norms"].new_full((self.history, size), float("nan"))
            self._norms[:, member] = saved["norms"]
        self._seen = saved["seen"]  # the history's position: one for all members

    def copy_member(self, source: int, target: int) -> None:
        """Member ``target`` takes ``source``'s AutoClip history and clip count."""
        size = self._clipped.shape[0] if self._clipped.ndim else 0
        self.load_member_state(target, self.member_state(source), size)

    def clipped_fraction(self) -> torch.Tensor | None:
        """The share of this epoch's steps that were clipped (per member in a population),
        and a fresh count for the next epoch; None before any step."""
        if not self._steps:
            return None
        share = self._clipped / self._steps
        self._clipped, self._steps = torch.zeros_like(self._clipped), 0
        return share

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._clipped.ndim:  # a population's counters: it reads them itself, per member
            return
        share = self.clipped_fraction()  # counted afresh every epoch
        if share is not None:
            pl_module.log("grad_clipped_frac", share, sync_dist=True)

    @property
    @override
    def state_key(self) -> str:
        # Two clippers in one Trainer keep separate checkpoint state.
        return self._generate_state_key(
            mode=self.mode,
            max_norm=self.max_norm,
            norm_type=self.norm_type,
            clip_value=self.clip_value,
            percentile=self.percentile,
            history=self.history,
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "norms": self._norms,
            "seen": self._seen,
            "clipped": self._clipped,
            "steps": self._steps,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._norms, self._seen = state_dict["norms"], state_dict["seen"]
        self._clipped, self._steps = state_dict["clipped"], state_dict["steps"]
