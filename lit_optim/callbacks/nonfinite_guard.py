"""NonFiniteGuard: catch NaN/Inf in the loss, the gradients or the weights, and act on it."""

from __future__ import annotations

import copy
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lit_optim.callbacks._grads import (
    any_nonfinite,
    grad_norms,
    named_trainable,
    nonfinite_names,
    with_grads,
)
from lit_optim.callbacks.divergence import spike_step
from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.errors import ConfigError, LitOptimError

__all__ = ["NonFiniteError", "NonFiniteGuard"]

ACTIONS = ("raise", "skip", "rollback", "stop")


class NonFiniteError(LitOptimError, FloatingPointError):
    """Training produced a NaN or Inf and the guard's action is to raise (or it gave up)."""


class NonFiniteGuard(L.Callback):
    """Check every optimizer step for a non-finite loss or gradient (optionally a loss
    spike), and optionally the weights after the step; then ``raise``, ``skip`` the step,
    ``rollback`` to the last good weights and optimizer state, or ``stop`` training cleanly.

    Hooks: ``on_before_backward`` records whether the loss is finite;
    ``on_before_optimizer_step`` checks the gradients there because Lightning calls it after
    AMP has unscaled them and before the optimizer (and any clipping) touches them, so a bad
    step can still be dropped. The per-step check is device-side: a flag accumulates on the
    device and is read (one host sync, reduced over DDP ranks so every rank decides alike)
    only every ``check_every_n_steps`` steps.

    Args:
        action: ``raise`` | ``skip`` | ``rollback`` | ``stop``.
        check_every_n_steps: how often the flag is read. ``skip`` needs 1: a step can be
            dropped only while it is being checked.
        check_params: also check the weights after each optimizer step.
        max_consecutive: for skip/rollback, how many bad checks in a row before giving up
            with a ``NonFiniteError``.
        snapshot_every_n_steps: for rollback, a clean check saves the weights and optimizer
            state (on the training device) once this many steps have passed since the last
            snapshot and since the last bad step (finite right after a blow-up is not healthy).
        lr_factor: for rollback, multiply every learning rate by this after restoring.
        snapshot_at_start: for rollback, snapshot the starting weights, so a bad step always
            has somewhere to go back to.
        loss_spike_factor: if set, a finite loss above this many times its running mean
            (an EMA over good steps) and above the first loss of the run is treated as bad
            too. Divergence often passes through huge finite values, or ends in a dead
            network, without ever producing a NaN; the second condition keeps late-training
            noise on tiny losses from counting as a spike.
    """

    def __init__(
        self,
        action: Literal["raise", "skip", "rollback", "stop"] = "raise",
        *,
        check_every_n_steps: int = 1,
        check_params: bool = False,
        max_consecutive: int = 5,
        snapshot_every_n_steps: int = 50,
        lr_factor: float = 1.0,
        snapshot_at_start: bool = True,
        loss_spike_factor: float | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {'|'.join(ACTIONS)}, got {action!r}")
        check_count("check_every_n_steps", check_every_n_steps)
        check_count("max_consecutive", max_consecutive)
        check_count("snapshot_every_n_steps", snapshot_every_n_steps)
        check_number("lr_factor", lr_factor, low=0, high=1, low_open=True)
        if loss_spike_factor is not None:
            check_number("loss_spike_factor", loss_spike_factor, low=1, low_open=True)
        if action == "skip" and check_every_n_steps != 1:
            raise ConfigError(
                "action 'skip' needs check_every_n_steps=1: a step can only be dropped while it "
                f"is checked (got {check_every_n_steps}); use 'rollback' to check less often"
            )
        self.action = action
        self.check_every_n_steps = check_every_n_steps
        self.check_params = check_params
        self.max_consecutive = max_consecutive
        self.snapshot_every_n_steps = snapshot_every_n_steps
        self.lr_factor = lr_factor
        self.snapshot_at_start = snapshot_at_start
        self.loss_spike_factor = loss_spike_factor
        self._loss_ema: torch.Tensor | None = None
        self._loss_first: torch.Tensor | None = None
        # Counters and the stop reason are checkpointed (state_dict); the snapshot is not.
        self.skipped = 0
        self.rollbacks = 0
        self.consecutive = 0
        self.stop_reason: str | None = None
        self._loss: torch.Tensor | None = None
        self._loss_bad: torch.Tensor | None = None
        self._window_bad: torch.Tensor | None = None
        self._snapshot: dict[str, Any] | None = None
        self._named: list = []
        self._last_bad_step = -1
        self._schedule_undo: tuple[list, list] | None = None

    # -- hooks ------------------------------------------------------------------------------
    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        self._named = named_trainable(pl_module)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.action == "rollback" and self.snapshot_at_start:
            self._take_snapshot(trainer, pl_module)

    @override
    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        loss = loss.detach()
        self._loss = loss  # checked together with the gradients, in one kernel chain
        self._loss_bad = None
        if self.loss_spike_factor is not None:
            ema = self._loss_ema
            if ema is None or self._loss_first is None:
                ema = torch.full_like(loss, float("nan"))
                self._loss_first = loss.clone()
            self._loss_bad, self._loss_ema = spike_step(
                loss, ema, self._loss_first, self.loss_spike_factor
            )
            self._last_ema = ema

    @override
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.sanity_checking:
            return
        names, params = with_grads(self._named)
        # One chain of three tiny kernels: a NaN/Inf anywhere in the loss or in any gradient
        # makes the sum of loss and gradient norms non-finite.
        total = self._loss if self._loss is not None else torch.zeros(())
        if params:
            total = grad_norms(trainer, params).sum() + total.to(params[0].device)
        step_bad = ~torch.isfinite(total)
        if self._loss_bad is not None:  # the spike check
            step_bad = step_bad | self._loss_bad
        self._accumulate(step_bad)
        if (trainer.global_step + 1) % self.check_every_n_steps:
            return  # no host sync on this step
        bad = self._window_bad
        assert bad is not None  # this step's flags were just accumulated
        self._window_bad = None
        if trainer.world_size > 1:  # every rank must take the same decision
            bad = trainer.strategy.reduce(bad.float(), reduce_op="max")
        if not bool(bad):  # the one host read per check
            self.consecutive = 0
            # A state becomes a snapshot only after snapshot_every_n_steps clean steps since
            # both the last snapshot and the last bad step: finite right after a blow-up is
            # not the same as healthy.
            since = min(
                trainer.global_step - self._snapshot["step"] if self._snapshot else 1 << 62,
                trainer.global_step - self._last_bad_step,
            )
            if self.action == "rollback" and (
                self._snapshot is None
                and self._last_bad_step < 0
                or since >= self.snapshot_every_n_steps
            ):
                self._take_snapshot(trainer, pl_module)
            return
        self._last_bad_step = trainer.global_step
        self._act(trainer, pl_module, self._describe(trainer, pl_module, names, params))

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.action in ("skip", "rollback"):
            # Equal on every rank (decisions are reduced); sync_dist keeps them so for logging.
            pl_module.log("nonfinite_skipped", float(self.skipped), reduce_fx="max", sync_dist=True)
            pl_module.log(
                "nonfinite_rollbacks", float(self.rollbacks), reduce_fx="max", sync_dist=True
            )

    # -- decisions --------------------------------------------------------------------------
    def _accumulate(self, bad: torch.Tensor) -> None:
        self._window_bad = (
            bad if self._window_bad is None else self._window_bad | bad.to(self._window_bad.device)
        )

    def _describe(self, trainer, pl_module, names, params) -> str:
        parts, label = [], "NaN/Inf"
        if self._loss is not None and not torch.isfinite(self._loss):
            parts.append("the loss is non-finite")
        elif self._loss_bad is not None and bool(self._loss_bad):
            label = "loss spike"
            assert self._loss is not None and self._last_ema is not None  # the spike rule's
            parts.append(
                f"the loss {self._loss.item():.4g} is above {self.loss_spike_factor:g} × "
                f"its running mean {self._last_ema.item():.4g}"
            )
        grad_names = nonfinite_names(names, [p.grad for p in params])
        if grad_names:
            parts.append("non-finite gradient in " + ", ".join(grad_names))
        weight_names = nonfinite_names([n for n, _ in self._named], [p for _, p in self._named])
        if weight_names:
            parts.append("non-finite weights in " + ", ".join(weight_names))
        where = (
            f"step {trainer.global_step}"
            if self.check_every_n_steps == 1
            else f"one of steps {trainer.global_step - self.check_every_n_steps + 1}-"
            f"{trainer.global_step}"
        )
        if len(parts) > 1 or (parts and label == "NaN/Inf"):
            label = "NaN/Inf"
        return f"{label} at {where}: " + (
            "; ".join(parts) or "non-finite values (gone by the check)"
        )

    def _act(self, trainer, pl_module, what: str) -> None:
        if self.action == "raise":
            raise NonFiniteError(what)
        self._act_on_dropped_step(trainer, pl_module, what)
        # Lightning still steps per-step schedules after a dropped step (and an optimizer
        # step hook such as StepWarmup still fires): put them back once it has, so a
        # dropped step moves no lr. Taken here, after a rollback has rescaled the lrs.
        self._schedule_undo = (
            [
                (c.scheduler, copy.deepcopy(c.scheduler.state_dict()))
                for c in trainer.lr_scheduler_configs
                if c.interval == "step"
            ],
            [
                [
                    {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                    for g in opt.param_groups
                ]
                for opt in trainer.optimizers
            ],
        )

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._schedule_undo is not None:
            schedules, groups = self._schedule_undo
            self._schedule_undo = None
            for scheduler, state in schedules:
                scheduler.load_state_dict(state)
            for opt, saved in zip(trainer.optimizers, groups):
                for group, values in zip(opt.param_groups, saved):
                    group.update(values)
        if self.check_params:
            self._accumulate(any_nonfinite([p for _, p in self._named]))

    def _act_on_dropped_step(self, trainer, pl_module, what: str) -> None:
        self.consecutive += 1
        if self.action == "stop":
            self.stop_reason = what
            self._drop_step(pl_module)
            trainer.should_stop = True
            rank_zero_warn(f"stopping training: {self.stop_reason}")
            if trainer.logger is not None:
                trainer.logger.log_hyperparams({"stop_reason": self.stop_reason})
            return
        if self.consecutive > self.max_consecutive:
            raise NonFiniteError(
                f"{what}; {self.consecutive} bad checks in a row (max_consecutive="
                f"{self.max_consecutive}), giving up"
            )
        self._drop_step(pl_module)
        if self.action == "skip":
            self.skipped += 1
            return
        if self._snapshot is None:
            raise NonFiniteError(
                f"{what}; rollback has no snapshot yet (the first is taken at the first "
                "clean check, or at the start with snapshot_at_start=true); the bad step was "
                "dropped, the weights are as before it"
            )
        self._restore(trainer, pl_module)
        self.rollbacks += 1

    @staticmethod
    def _drop_step(pl_module) -> None:
        # Optimizers skip parameters whose grad is None: no update, no optimizer-state change.
        for p in pl_module.parameters():
            p.grad = None

    # -- snapshots --------------------------------------------------------------------------
    def _take_snapshot(self, trainer, pl_module) -> None:
        self._snapshot = {
            "model": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "optimizers": [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers],
            "step": trainer.global_step,
        }

    def _restore(self, trainer, pl_module) -> None:
        snapshot = self._snapshot
        assert snapshot is not None  # the caller refuses a rollback without one
        pl_module.load_state_dict(snapshot["model"])
        for opt, state in zip(trainer.optimizers, snapshot["optimizers"]):
            current_lrs = [g["lr"] for g in opt.param_groups]
            opt.load_state_dict(copy.deepcopy(state))
            # Keep the schedule's current position (the snapshot's lrs are older), scaled.
            for group, lr in zip(opt.param_groups, current_lrs):
                group["lr"] = lr * self.lr_factor
                if "initial_lr" in group:
                    group["initial_lr"] *= self.lr_factor
        if self.lr_factor != 1.0:
            for config in trainer.lr_scheduler_configs:
                _scale_base_lrs(config.scheduler, self.lr_factor)
        rank_zero_warn(
            f"rolled back to the weights of step {snapshot['step']} (lr × {self.lr_factor})"
        )

    # -- checkpointing ----------------------------------------------------------------------
    @property
    @override
    def state_key(self) -> str:
        # Two guards in one Trainer keep separate checkpoint state.
        return self._generate_state_key(
            action=self.action,
            check_every_n_steps=self.check_every_n_steps,
            check_params=self.check_params,
            max_consecutive=self.max_consecutive,
            snapshot_every_n_steps=self.snapshot_every_n_steps,
            lr_factor=self.lr_factor,
            snapshot_at_start=self.snapshot_at_start,
            loss_spike_factor=self.loss_spike_factor,
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "rollbacks": self.rollbacks,
            "consecutive": self.consecutive,
            "stop_reason": self.stop_reason,
            "loss_ema": self._loss_ema,
            "loss_first": self._loss_first,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = state_dict["skipped"]
        self.rollbacks = state_dict["rollbacks"]
        self.consecutive = state_dict["consecutive"]
        self.stop_reason = state_dict["stop_reason"]
        self._loss_ema = state_dict.get("loss_ema")
        self._loss_first = state_dict.get("loss_first")


def _scale_base_lrs(scheduler, factor: float) -> None:
    """Scale the lrs a scheduler computes from, through SequentialLR/ChainedScheduler too."""
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]
    for inner in getattr(scheduler, "_schedulers", ()):
        _scale_base_lrs(inner, factor)
