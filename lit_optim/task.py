"""``ClassificationTask``: a network, an optimizer and a schedule, all chosen by name.

``lr`` and ``weight_decay`` are flat hyperparameters because tuning searches them; everything
else an optimizer or scheduler takes goes in ``optimizer_kwargs`` / ``scheduler_kwargs``. All
names and kwargs are checked in ``__init__``, so a bad recipe fails before any data is read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lightning.pytorch.utilities import rank_zero_info

from lit_optim.errors import ConfigError
from lit_optim.kwargs import accepted_kwargs
from lit_optim.models import build_model
from lit_optim.optimizers import OPTIMIZERS, build_optimizer, check_optimizer_args
from lit_optim.param_groups import build_param_groups, check_param_group_specs
from lit_optim.schedulers import RunLength, build_scheduler_config, check_scheduler_args

__all__ = ["ClassificationTask", "is_logging_step"]


def is_logging_step(trainer: L.Trainer) -> bool:
    """Whether this optimizer step's values reach the logger: the test Lightning applies.
    Per-step logging is skipped on other steps (self.log costs ~0.3 ms a call on CPU)."""
    return (trainer.global_step + 1) % trainer.log_every_n_steps == 0


class ClassificationTask(L.LightningModule):
    """Cross-entropy classification with accuracy from torchmetrics.

    Logs, per epoch: ``train_loss`` (mean over the epoch), ``train_acc``, ``val_loss``,
    ``val_acc``, ``test_loss``, ``test_acc``; per logging step (``log_every_n_steps``):
    ``train_loss_step`` and ``lr``.

    Args:
        input_shape: shape of one sample; the CLI links it from the data module.
        num_classes: number of classes; the CLI links it from the data module.
        network: registered model name (``lit-optim list models``).
        network_kwargs: keyword arguments of that model (e.g. ``hidden_dims``).
        optimizer: registered optimizer name (``lit-optim list optimizers``).
        lr: initial learning rate, > 0.
        weight_decay: weight decay, ≥ 0 (L2 or decoupled, as the optimizer defines it).
        optimizer_kwargs: the optimizer's other keyword arguments (``momentum``, ``betas`` …).
        scheduler: registered LR scheduler name (``lit-optim list schedulers``).
        scheduler_kwargs: the scheduler's keyword arguments; ``monitor`` for plateau;
            ``warmup_steps`` or ``warmup_epochs`` (and ``warmup_start_factor``) for a linear
            warmup in front of any schedule.
        param_groups: per-module options, e.g. ``[{params: "net.0.*", lr: 0.01,
            weight_decay: 0}]`` (see ``lit_optim.param_groups``).
        decay_bias_and_norm: also apply weight decay to biases and normalization weights.
        lr_scaling: the large-batch rule: ``linear`` multiplies every lr by
            batch / base_batch_size, ``sqrt`` by its square root; batch is the global batch
            (per-device batch × devices × gradient accumulation).
        base_batch_size: the batch size the lrs were chosen for (needed by ``lr_scaling``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        network: str = "mlp",
        network_kwargs: dict[str, Any] | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer_kwargs: dict[str, Any] | None = None,
        scheduler: str = "constant",
        scheduler_kwargs: dict[str, Any] | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        decay_bias_and_norm: bool = False,
        lr_scaling: Literal["none", "linear", "sqrt"] = "none",
        base_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        # Fail on a bad optimizer or schedule now, not after the first epoch.
        info = check_optimizer_args(optimizer, lr, weight_decay, optimizer_kwargs or {})
        check_scheduler_args(scheduler, scheduler_kwargs or {})
        if param_groups:
            if info.single_param_group:
                raise ConfigError(f"optimizer {info.name!r} takes a single parameter group; "
                                  "remove param_groups")
            base = OPTIMIZERS.get((optimizer_kwargs or {}).get("base", "adam")) \
                if info.name == "lookahead" else info
            per_group = set(accepted_kwargs(base.resolve(), exclude=("params",)))
            check_param_group_specs(param_groups, per_group | {"lr", "weight_decay"})
        if lr_scaling not in ("none", "linear", "sqrt"):
            raise ConfigError(f"lr_scaling must be one of none|linear|sqrt, got {lr_scaling!r}")
        if lr_scaling != "none" and (
            isinstance(base_batch_size, bool) or not isinstance(base_batch_size, int)
            or base_batch_size <= 0
        ):
            raise ConfigError(
                f"lr_scaling {lr_scaling!r} needs base_batch_size, the batch size lr was chosen "
                f"for (a positive integer), got {base_batch_size!r}"
            )
        self.net = build_model(network, input_shape, num_classes, **(network_kwargs or {}))
        # Stored in checkpoints: load_from_checkpoint rebuilds the task with no other input.
        # A list, not a tuple, keeps hparams.yaml readable by yaml.safe_load.
        input_shape = [int(s) for s in input_shape]
        self.save_hyperparameters()
        # validate_args=False / nan_strategy="disable": their input checks read values back to
        # the host, a device sync on every step. NaN losses are the health callbacks' job.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        # An optimizer without weight decay (L-BFGS) gets it as an L2 term in the loss: its
        # line search needs the loss and the gradient to describe the same objective.
        self._l2_in_loss = bool(weight_decay) and not info.supports_weight_decay
        if param_groups:  # patterns that match nothing fail now, not when fit starts
            build_param_groups(self, lr=lr, weight_decay=weight_decay, specs=param_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        # Epoch aggregates accumulate on the device with no host sync.
        self.train_loss.update(loss.detach(), len(y))
        if self._l2_in_loss:
            loss = loss + self.l2_penalty()
        self.train_acc.update(logits.detach(), y)
        # self.log costs ~0.3 ms per call on CPU (Lightning deep-copies its metadata), as much
        # as a whole small-MLP step, so per-step values are only logged on steps that reach
        # the logger.
        if is_logging_step(self.trainer):
            self.log("train_loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True,
                     on_epoch=False)
        return loss

    def l2_penalty(self) -> torch.Tensor:
        """½·weight_decay·Σ‖w‖² over the parameters that decay (biases and norms excluded
        unless decay_bias_and_norm)."""
        hp = self.hparams
        decayed = [p for p in self.parameters()
                   if p.requires_grad and (hp.decay_bias_and_norm or p.ndim >= 2)]
        return 0.5 * hp.weight_decay * sum(p.pow(2).sum() for p in decayed)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y), prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.test_acc.update(logits, y)
        self.log("test_loss", F.cross_entropy(logits, y), batch_size=len(y))

    # Epoch metrics are logged once per epoch from the metrics' accumulated state. Passing
    # the Metric object to self.log every step (Lightning's usual pattern) makes Lightning
    # move the whole metric module to the device on each call: ~0.6 ms per step on CPU, most
    # of lit-optim's overhead over a plain loop (bench/fit_vs_raw.py).
    def on_train_epoch_end(self) -> None:
        if self.train_loss.update_count:
            self.log("train_loss", self.train_loss.compute())
        self.train_loss.reset()
        self._log_accuracy("train_acc", self.train_acc)

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val_acc", self.val_acc, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test_acc", self.test_acc)

    def _log_accuracy(self, name: str, metric: MulticlassAccuracy, prog_bar: bool = False) -> None:
        if metric.update_count:  # e.g. limit_train_batches=0
            self.log(name, metric.compute(), prog_bar=prog_bar)
        metric.reset()

    def lr_factor(self) -> float:
        """The batch-size scaling factor applied to every lr (1 without ``lr_scaling``)."""
        hp = self.hparams
        if hp.lr_scaling == "none":
            return 1.0
        per_device = getattr(self.trainer.datamodule, "batch_size", None)
        if not isinstance(per_device, int):
            raise ConfigError(
                f"lr_scaling {hp.lr_scaling!r} needs the batch size: fit with a data module "
                "that has a batch_size"
            )
        batch = per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches
        ratio = batch / hp.base_batch_size
        return ratio if hp.lr_scaling == "linear" else math.sqrt(ratio)

    def configure_optimizers(self):
        hp = self.hparams
        trainer = self.trainer
        factor = self.lr_factor()
        info = OPTIMIZERS.get(hp.optimizer)
        if info.single_param_group:
            params = [{"params": [p for p in self.parameters() if p.requires_grad]}]
        else:
            params = build_param_groups(
                self, lr=hp.lr, weight_decay=hp.weight_decay, specs=hp.param_groups or (),
                decay_bias_and_norm=hp.decay_bias_and_norm, lr_factor=factor,
            )
        optimizer = build_optimizer(
            hp.optimizer, params, lr=hp.lr * factor, weight_decay=hp.weight_decay,
            **(hp.optimizer_kwargs or {}),
        )
        if factor != 1.0:
            rank_zero_info(f"lr_scaling {hp.lr_scaling}: global batch / {hp.base_batch_size} "
                           f"→ lr × {factor:.4g} = {hp.lr * factor:.4g}")
            if trainer.logger is not None:
                trainer.logger.log_hyperparams({"effective_lr": hp.lr * factor})
        total_steps = trainer.estimated_stepping_batches  # also sets num_training_batches
        batches = trainer.num_training_batches
        run = RunLength(
            total_steps=total_steps,
            steps_per_epoch=math.ceil(batches / trainer.accumulate_grad_batches)
            if math.isfinite(batches) else None,
        )
        validates = trainer.limit_val_batches != 0
        schedulers = build_scheduler_config(
            hp.scheduler, optimizer, hp.scheduler_kwargs or {}, run=run,
            val_every_n_epochs=(trainer.check_val_every_n_epoch or 1) if validates else None,
        )
        return [optimizer], schedulers
