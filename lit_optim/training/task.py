"""``ClassificationTask``: a network, an optimizer and a schedule, all chosen by name.

``lr`` and ``weight_decay`` are flat hyperparameters because tuning searches them; everything
else an optimizer or scheduler takes goes in ``optimizer_kwargs`` / ``scheduler_kwargs``. All
names, kwargs and values are checked in ``__init__``, so a bad recipe fails before any data is
read. The optimizer and schedule come from ``lit_optim.catalog.factory``, exactly as in a user's own
module: the task holds no optimizer or scheduler logic of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from lit_optim.catalog.checks import check_count
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.factory import (
    check_lr_scaling,
    check_optimizer_choice,
    create_optimizer,
    create_scheduler,
    l2_penalty,
    loss_weight_decay,
    lr_scale_factor,
)
from lit_optim.catalog.kwargs import plain_data
from lit_optim.catalog.optimizers import check_optimizer_args
from lit_optim.catalog.param_groups import build_param_groups
from lit_optim.catalog.schedulers import check_scheduler_args
from lit_optim.catalog.trainer_info import is_logging_step
from lit_optim.training.metrics import TrainingTotals, WeightedMean
from lit_optim.training.models import build_model

__all__ = ["EPOCH_METRICS", "ClassificationTask"]

# What the task logs once per epoch, and so the only metrics its plateau can monitor.
EPOCH_METRICS = ("val_loss", "val_acc", "train_loss", "train_acc")


class ClassificationTask(L.LightningModule):
    """Cross-entropy classification with accuracy from torchmetrics.

    Logs, per epoch: ``train_loss`` (mean over the epoch), ``train_acc``, ``val_loss``,
    ``val_acc``, ``test_loss``, ``test_acc``; per logging step (``log_every_n_steps``):
    ``train_loss_step`` and ``lr``.

    Args:
        input_shape: shape of one sample; the CLI fills it in from a ``ClassificationData``.
        num_classes: number of classes; the CLI fills it in from a ``ClassificationData``.
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
            weight_decay: 0}]`` (see ``lit_optim.catalog.param_groups``).
        decay_bias_and_norm: also apply weight decay to biases and normalization weights.
        lr_scaling: the large-batch rule: ``linear`` multiplies every lr by
            batch / base_batch_size, ``sqrt`` by its square root; batch is the global batch
            (per-device batch × devices × gradient accumulation).
        base_batch_size: the batch size the lrs were chosen for (needed by ``lr_scaling``).
    """

    # Everything the task logs during fit, declared so that lit-tune can check a search
    # space's metric before trial 0 (a module without this is checked after its first epoch).
    LOGGED_METRICS = (*EPOCH_METRICS, "train_loss_step")
    EPOCH_METRICS = EPOCH_METRICS  # what a fit's closing summary reports

    def __init__(
        self,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
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
        if input_shape is None or num_classes is None:
            raise ConfigError(
                "ClassificationTask needs input_shape and num_classes; lit-optim fills them in "
                "from a ClassificationData, so give them yourself with any other data module"
            )
        check_count("num_classes", num_classes)
        # Fail on a bad optimizer or schedule now, not after the first epoch. L-BFGS cannot
        # apply weight decay itself, so the task adds that share to its loss (an L2 term).
        self._loss_weight_decay = loss_weight_decay(optimizer, weight_decay)
        decay = weight_decay - self._loss_weight_decay
        # The kwargs as a mapping first: an lr among them is "set it with model.lr", where
        # spread into the call below it was Python's "got multiple values for 'lr'".
        check_optimizer_args(optimizer, lr, decay, optimizer_kwargs or {})
        check_optimizer_choice(
            optimizer,
            lr=lr,
            weight_decay=decay,
            param_groups=param_groups,
            **(optimizer_kwargs or {}),
        )
        _, monitor = check_scheduler_args(scheduler, scheduler_kwargs or {})
        if monitor is not None and monitor not in EPOCH_METRICS:
            raise ConfigError(
                f"scheduler {scheduler!r} monitors {monitor!r}, which is never logged; "
                f"use one of: {', '.join(EPOCH_METRICS)}"
            )
        check_lr_scaling(lr_scaling, base_batch_size)
        self.net = build_model(network, input_shape, num_classes, **(network_kwargs or {}))
        # Stored in checkpoints: load_from_checkpoint rebuilds the task with no other input.
        # Lists, not tuples: Lightning writes hparams.yaml (from these locals, read by
        # save_hyperparameters) with yaml.dump, which tags a tuple for Python only.
        input_shape, network_kwargs, optimizer_kwargs, scheduler_kwargs, param_groups = plain_data(
            [input_shape, network_kwargs, optimizer_kwargs, scheduler_kwargs, param_groups]
        )
        self.save_hyperparameters()
        # Losses: weighted by batch size and synced over DDP ranks at compute (self.log would
        # average the ranks' means, wrong when they hold different numbers of samples), with
        # no host sync per step. Accuracy: validate_args=False, whose input checks would read
        # values back to the host every step. NaN losses are the health callbacks' job.
        # The training epoch's loss and accuracy are plain device sums (TrainingTotals: a
        # Metric's update costs more per step than they do).
        self.train_totals = TrainingTotals()
        self.val_loss = WeightedMean()
        self.test_loss = WeightedMean()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        if param_groups:  # patterns that match nothing fail now, not when fit starts
            build_param_groups(self, lr=lr, weight_decay=weight_decay, specs=param_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        # Epoch aggregates accumulate on the device with no host sync.
        self.train_totals.update(loss, logits, y)
        if self._loss_weight_decay:
            # L-BFGS's line search needs the loss and the gradient to describe one objective.
            loss = loss + l2_penalty(
                self,
                self._loss_weight_decay,
                decay_bias_and_norm=self.hparams["decay_bias_and_norm"],
            )
        # A self.log call costs as much as a whole small-MLP step on CPU (Lightning deep-copies
        # its metadata: bench/README.md, costs), so the step's loss is only logged on steps
        # that reach the logger. Not prog_bar: Lightning would read it back to the host after every
        # batch (a GPU sync a step); TimedProgressBar shows it when it redraws. The lr of
        # every param group is Lightning's LearningRateMonitor's to log (lit-optim fit adds
        # one where there is a logger).
        if is_logging_step(self.trainer):
            self.log("train_loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.val_acc.update(logits, y)
        self.val_loss.update(F.cross_entropy(logits, y), len(y))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.test_acc.update(logits, y)
        self.test_loss.update(F.cross_entropy(logits, y), len(y))

    # Epoch metrics are logged once per epoch from the metrics' accumulated state. Passing
    # the Metric object to self.log every step (Lightning's usual pattern) makes Lightning
    # move the whole metric module to the device on each call: most of lit-optim's overhead
    # over a plain loop (bench/fit_vs_raw.py; bench/README.md, costs).
    #
    # compute() syncs each metric over DDP ranks, so every rank logs the same value (and a
    # plateau or checkpoint decides alike everywhere); sync_dist then costs one all-reduce
    # of equal numbers and keeps Lightning from warning about unsynced epoch values.
    def on_train_epoch_end(self) -> None:
        totals = self.train_totals.compute(self.trainer.strategy, self.device)
        self.train_totals.reset()
        if totals is not None:  # e.g. limit_train_batches=0
            self.log("train_loss", totals[0])  # already summed over the ranks
            self.log("train_acc", totals[1])

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val_loss", self.val_loss, prog_bar=True)
        self._log_epoch("val_acc", self.val_acc, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test_loss", self.test_loss)
        self._log_epoch("test_acc", self.test_acc)

    def _log_epoch(self, name: str, metric, prog_bar: bool = False) -> None:
        # Every rank must reach compute() (a collective) or none: a rank with no batch of
        # its own still takes part under DDP.
        if metric.update_count or self.trainer.world_size > 1:  # e.g. limit_train_batches=0
            self.log(name, metric.compute(), prog_bar=prog_bar, sync_dist=True)
        metric.reset()

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = create_optimizer(
            self,
            hp.optimizer,
            lr=hp.lr,
            weight_decay=hp.weight_decay - self._loss_weight_decay,
            param_groups=hp.param_groups,
            decay_bias_and_norm=hp.decay_bias_and_norm,
            lr_scale=lr_scale_factor(self.trainer, hp.lr_scaling, hp.base_batch_size),
            **(hp.optimizer_kwargs or {}),
        )
        scheduler = create_scheduler(
            hp.scheduler, optimizer, self.trainer, **(hp.scheduler_kwargs or {})
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
