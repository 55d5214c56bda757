"""``PopulationTask``: N ``ClassificationTask`` trials of one structure as one LightningModule.

The Trainer still provides devices, precision, the loop, progress and logging; the module
trains a ``StackedNetwork`` with a ``PopulationUpdate`` (manual optimization: the update is
not a torch Optimizer). What the members share is everything that shapes tensors or the
schedule: network and its kwargs, data and batch size, epochs, optimizer and scheduler names,
scheduler kwargs. What varies is every scalar: lr, weight_decay, momentum, betas, eps …

Learning rates follow the registry's schedules exactly, without re-implementing any: each
member drives its own torch scheduler (``create_scheduler``, warmup included) on a
one-parameter shadow optimizer, stepped when Lightning would step the real one, and its lr is
copied into the population each step. Members that go NaN/Inf (checked once per epoch, one
host read) leave the population; the others compute exactly as without them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.factory import create_scheduler
from lit_optim.catalog.optimizers import build_optimizer
from lit_optim.catalog.param_groups import takes_decay
from lit_optim.catalog.rescale import rescale_hyperparameters
from lit_optim.catalog.schedulers import SCHEDULERS, check_scheduler_args
from lit_optim.population.health import MemberHealth
from lit_optim.population.members import MemberSettings, PopulationMembers
from lit_optim.population.rules import POPULATION_OPTIMIZERS, PopulationUpdate
from lit_optim.population.stacked import StackedNetwork
from lit_optim.training.models import build_model

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

__all__ = ["PopulationTask"]


class PopulationTask(PopulationMembers, L.LightningModule):
    """Args are ClassificationTask's shared ones, plus ``members``: one dict per member of
    ``lr``, ``weight_decay`` and the optimizer's other scalar kwargs. Every member starts from
    the weights ``torch.manual_seed(seed)`` then building the network gives (what its
    sequential trial starts from under ``seed_everything(seed)``).

    After each validation epoch ``member_metrics`` holds ``val_loss`` and ``val_acc`` ([N]
    tensors over the members still in, whose original indices are ``alive``); ``dropped``
    maps a removed member to its reason.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        members: Sequence[Mapping],
        network: str = "mlp",
        network_kwargs: Mapping[str, Any] | None = None,
        optimizer: str = "adam",
        scheduler: str = "constant",
        scheduler_kwargs: Mapping[str, Any] | None = None,
        seed: int = 0,
        decay_bias_and_norm: bool = False,
        **settings: Unpack[MemberSettings],
    ) -> None:
        super().__init__()
        if not members:
            raise ConfigError("a population needs at least one member")
        if optimizer not in POPULATION_OPTIMIZERS:
            raise ConfigError(
                f"optimizer {optimizer!r} has no population rule; those that do: "
                f"{', '.join(POPULATION_OPTIMIZERS)}"
            )
        check_scheduler_args(scheduler, scheduler_kwargs or {})
        self.automatic_optimization = False
        self.decay_bias_and_norm = decay_bias_and_norm
        self.members = [dict(m) for m in members]
        self.optimizer_name, self.scheduler_name = optimizer, scheduler
        self.scheduler_kwargs = dict(scheduler_kwargs or {})
        self._network = (network, tuple(input_shape), num_classes, dict(network_kwargs or {}))
        self.seed = seed
        self.net = StackedNetwork(self._nets(len(self.members)))
        self._start_members(len(self.members), settings)
        self._sums: dict[str, torch.Tensor] = {}
        self.module_name = "ClassificationTask"  # what the members are, for messages
        self.directions = None  # it logs val_loss and val_acc, whose directions are standard

    def _nets(self, n: int) -> list[nn.Module]:
        """``n`` networks as each member's sequential trial builds its own: under
        ``torch.manual_seed(seed)``."""
        network, input_shape, num_classes, kwargs = self._network
        nets = []
        for _ in range(n):
            torch.manual_seed(self.seed)
            nets.append(build_model(network, input_shape, num_classes, **kwargs))
        return nets

    # -- optimization -------------------------------------------------------------------------
    def configure_optimizers(self):
        # ClassificationTask's parameter groups' rule, on each member's dimensions (the
        # stacked tensors have a leading member axis).
        decay = [takes_decay(p.ndim - 1, self.decay_bias_and_norm) for p in self.net.parameters()]
        self.update = PopulationUpdate(
            self.optimizer_name, list(self.net.parameters()), self.members, decay=decay
        )
        self.run_epochs = self.trainer.max_epochs  # each member's own run, also a newcomer's
        self.shadows, self._member_groups = self._build_shadows(list(enumerate(self.members)))
        self._copy_lrs()
        return None  # manual optimization: Lightning runs with its placeholder optimizer

    def _build_shadows(
        self, members: list[tuple[int, Mapping[str, Any]]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The members' schedules: shadow optimizers of the members' own class, one
        throwaway parameter per member, so a schedule that also cycles momentum or beta1
        (onecycle) finds the key it expects.

        One shadow with a param group per member serves all of them (a torch scheduler
        treats each group as its own schedule, from the group's own lr: one step call a
        batch instead of N); apart are a monitoring schedule (plateau reads one metric per
        scheduler, and each member has its own) and, for onecycle, members whose momentum
        is 0 and not (it decides from ``optimizer.defaults`` whether to cycle momentum).

        ``members``: (index, kwargs) of the members to build for; returns the shadows and
        each member's param group, in ``members``' order. Every schedule is built for the
        members' own run (a newcomer joins a population whose Trainer runs on).
        """
        info = SCHEDULERS.get(self.scheduler_name)
        _, defaults = POPULATION_OPTIMIZERS[self.optimizer_name]
        kwargs = dict(members)
        parts: dict[Any, list[int]] = {}
        for i, member in members:
            key = (
                i if info.needs_monitor else bool(member.get("momentum", defaults.get("momentum")))
            )
            parts.setdefault(key, []).append(i)
        shadows: list[dict[str, Any]] = []
        group_of: dict[int, dict[str, Any]] = {}
        loop = self.trainer.fit_loop
        running, loop.max_epochs = loop.max_epochs, self.run_epochs
        try:
            for indices in parts.values():
                groups = [{"params": [nn.Parameter(torch.zeros(1))], **kwargs[i]} for i in indices]
                first = {k: v for k, v in kwargs[indices[0]].items() if k != "lr"}
                shadow = build_optimizer(
                    self.optimizer_name, groups, lr=kwargs[indices[0]]["lr"], **first
                )
                config = create_scheduler(
                    self.scheduler_name, shadow, self.trainer, **self.scheduler_kwargs
                )
                group_of.update(zip(indices, shadow.param_groups))
                shadows.append({"optimizer": shadow, "config": config, "members": indices})
        finally:
            loop.max_epochs = running
        return shadows, [group_of[i] for i, _ in members]

    def _copy_lrs(self) -> None:
        """lr, and the momentum / betas a schedule may cycle, from each member's shadow."""
        self.update.follow(self._member_groups)

    def _step_shadows(self, interval: str, metrics: dict[str, torch.Tensor] | None = None):
        for shadow in self.shadows:
            config = shadow["config"]
            if interval == "step":
                self._step_shadow(shadow)
            if config["interval"] != interval:
                continue
            if "monitor" in config:
                assert metrics is not None  # an epoch's step passes them
                (member,) = shadow["members"]  # a monitoring shadow has one member
                config["scheduler"].step(
                    float(metrics[config["monitor"]][self.alive.index(member)])
                )
            else:
                config["scheduler"].step()
        self._copy_lrs()

    def on_fit_start(self) -> None:
        # The names a member's own ClassificationTask gives its parameters (its net is `net`).
        self.health = MemberHealth(self, [f"net.{n}" for n in self.net.stacked()])

    def training_step(self, batch, batch_idx):
        x, y = batch
        losses = StackedNetwork.member_losses(self.net(x), y)
        for p in self.net.parameters():
            p.grad = None
        self.manual_backward(losses.sum())
        self.spikes.update(losses)
        self.health.before_update(list(self.net.stacked().values()))
        self.update.step()
        self.health.after_update()
        self._step_shadows("step")
        self._add("train_loss", losses.detach() * len(y), len(y))

    # -- metrics ------------------------------------------------------------------------------
    def _add(self, name: str, total: torch.Tensor, count: int) -> None:
        total = total.to(torch.float64)
        if name not in self._sums:
            self._sums[name] = torch.zeros_like(total)
            self._sums[name + "/n"] = torch.zeros((), dtype=torch.float64, device=total.device)
        self._sums[name] += total
        self._sums[name + "/n"] += count

    def _mean(self, name: str) -> torch.Tensor:
        value = self._sums.pop(name) / self._sums.pop(name + "/n")
        return value

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self._add("val_loss", StackedNetwork.member_losses(logits, y) * len(y), len(y))
        self._add("val_acc", (logits.argmax(-1) == y).sum(dim=1), len(y))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._sums.clear()
            return
        self.member_metrics = {name: self._mean(name) for name in ("val_loss", "val_acc")}
        for name, values in self.member_metrics.items():
            self.log(
                f"{name}_best",
                values.max() if name == "val_acc" else values.nan_to_num(float("inf")).min(),
                prog_bar=True,
            )

    def on_train_epoch_end(self) -> None:
        self.epochs_trained = [e + 1 for e in self.epochs_trained]
        if "train_loss" in self._sums:
            self.member_metrics["train_loss"] = self._mean("train_loss")
        assert self.health is not None  # made when the fit started
        self.member_metrics.update(self.health.epoch_metrics())
        self._step_shadows("epoch", self.member_metrics)
        bad = self.spikes.bad(len(self.alive), self.net.first_parameter.device).clone()
        for values in self.member_metrics.values():
            bad |= ~torch.isfinite(values)
        self._leave_if_diverged(bad, "non-finite or spiking loss, or non-finite metric")
        if self.on_epoch_end is not None:  # members leave and join between epochs
            self.on_epoch_end(self)

    # -- membership ---------------------------------------------------------------------------
    def drop(self, keep: torch.Tensor, reason: str) -> None:
        """Remove the members where ``keep`` is False (pruned by their trial, or diverged)."""
        keep = keep.to(torch.bool).cpu()
        if bool(keep.all()):
            return
        for index, stays in zip(self.alive, keep.tolist()):
            if not stays:
                self.dropped[index] = reason
        self.net.keep(keep)
        self.spikes.keep(keep)
        if self.health is not None:
            self.health.keep(keep)
        self.update.keep(keep, list(self.net.parameters()))
        # A shared shadow goes on stepping the groups of dropped members: harmless, unread.
        gone = {i for i, k in zip(self.alive, keep.tolist()) if not k}
        self.shadows = [s for s in self.shadows if not set(s["members"]) <= gone]
        self._member_groups = [g for g, k in zip(self._member_groups, keep.tolist()) if k]
        self.members = [m for m, k in zip(self.members, keep.tolist()) if k]
        self.alive = [i for i, k in zip(self.alive, keep.tolist()) if k]
        self.epochs_trained = [e for e, k in zip(self.epochs_trained, keep.tolist()) if k]
        self.member_metrics = {k: v[keep.to(v.device)] for k, v in self.member_metrics.items()}
        self._sums = {
            k: v if k.endswith("/n") else v[keep.to(v.device)] for k, v in self._sums.items()
        }
        if not self.alive:  # nobody left: the fit ends here, unless newcomers may join
            self.trainer.should_stop = self.trainer.should_stop or self.stop_when_empty

    def _shadow_of(self, member: int) -> dict[str, Any]:
        return next(s for s in self.shadows if self.alive[member] in s["members"])

    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s (a position in ``alive``) whole state, as copies: weights,
        optimizer state and step count, its schedule's lr and position (the schedule's whole
        state where it has one of its own: plateau), epochs trained, spike and clipping
        state, last epoch values. ``load_member_state`` puts it into a position of this
        population (PBT's exploit) or of one built afresh (PBT's resume)."""
        shadow, group = self._shadow_of(member), self._member_groups[member]
        out = {
            "tensors": [t[member].clone() for t in [*self.net.parameters(), *self.net.buffers()]],
            "update": self.update.member_state(member),
            "group": copy.deepcopy({k: v for k, v in group.items() if k != "params"}),
            "records": self._member_records(member),
        }
        # Its entries in its scheduler's per-group lists, and the position; where the
        # schedule is its own (plateau, one member per shadow) its whole state too.
        out["schedule"] = _group_entries(shadow["config"]["scheduler"], _index(shadow, group))
        if len(shadow["members"]) == 1:
            out["optimizer"] = copy.deepcopy(shadow["optimizer"].state_dict())
            out["scheduler"] = copy.deepcopy(shadow["config"]["scheduler"].state_dict())
        return out

    @torch.no_grad()
    def load_member_state(self, member: int, saved: dict[str, Any]) -> None:
        """Position ``member`` becomes ``saved`` (``member_state``), bit for bit; it keeps its
        name and index."""
        for tensor, value in zip(
            [*self.net.parameters(), *self.net.buffers()], saved["tensors"], strict=True
        ):
            tensor[member] = value
        self.update.load_member_state(member, saved["update"])
        own = self._shadow_of(member)
        mine = self._member_groups[member]
        mine.update(copy.deepcopy(saved["group"]))
        if "optimizer" in saved and len(own["members"]) == 1:
            own["optimizer"].load_state_dict(copy.deepcopy(saved["optimizer"]))
            own["config"]["scheduler"].load_state_dict(copy.deepcopy(saved["scheduler"]))
            self._member_groups[member] = own["optimizer"].param_groups[0]
        else:
            _load_group_entries(own["config"]["scheduler"], _index(own, mine), saved["schedule"])
        self._load_records(member, saved["records"])
        self._copy_lrs()

    @torch.no_grad()
    def rescale_member(self, member: int, *, lr: float = 1.0, weight_decay: float = 1.0) -> None:
        """PBT's explore: member ``member``'s (a position in ``alive``) lr, and every lr its
        schedule keeps, times ``lr``; its weight decay times ``weight_decay``; as
        ``HyperparameterSchedule`` does to a replay of it (``lit_optim.catalog.rescale``)."""
        group = self._member_groups[member]
        shadow = self._shadow_of(member)
        rescale_hyperparameters(
            shadow["optimizer"],
            [shadow["config"]["scheduler"]],
            lr=lr,
            weight_decay=weight_decay,
            groups=[_index(shadow, group)],
        )
        if "weight_decay" in self.update.h:
            self.update.h["weight_decay"][member] = group["weight_decay"]
        self._copy_lrs()

    def join(self, members: Sequence[Mapping], names: Sequence[str]) -> list[int]:
        """Add ``members`` (kwargs as ``__init__``'s) after the present ones, between epochs;
        returns their indices. Each starts from the weights its sequential trial starts from,
        at its own epoch 0 and step 0 (fresh optimizer state, its schedule built for its own
        run). The random state is left as it was: the others' data order goes on."""
        kwargs, names = [dict(m) for m in members], list(names)
        state = torch.get_rng_state()
        try:
            nets = self._nets(len(kwargs))
        finally:
            torch.set_rng_state(state)
        self.net.join([net.to(self.net.first_parameter.device) for net in nets])
        self.update.join(kwargs, list(self.net.parameters()))
        first = len(self.member_names)
        shadows, groups = self._build_shadows(list(zip(range(first, first + len(kwargs)), kwargs)))
        self.shadows += shadows
        self._member_groups += groups
        self.members += kwargs
        new = self._record_newcomers(names)
        self._copy_lrs()
        return new


def _index(shadow: dict[str, Any], group: dict[str, Any]) -> int:
    return next(i for i, g in enumerate(shadow["optimizer"].param_groups) if g is group)


# A torch scheduler's position: what members that started together share (a SequentialLR's
# children keep theirs too).
_POSITION = ("last_epoch", "_step_count")


def _group_entries(scheduler: Any, index: int) -> dict[str, Any]:
    """A torch scheduler keeps some state per param group in lists (``base_lrs``,
    ``_last_lr``, CyclicLR's ``max_lrs`` …; a SequentialLR in its children): group
    ``index``'s entries, with the scheduler's position and class."""
    n_groups = len(scheduler.optimizer.param_groups)
    return {
        "class": type(scheduler).__name__,
        "entries": {
            name: copy.deepcopy(value[index])
            for name, value in vars(scheduler).items()
            if isinstance(value, list) and len(value) == n_groups
        },
        "position": {
            name: getattr(scheduler, name) for name in _POSITION if hasattr(scheduler, name)
        },
        "children": [_group_entries(c, index) for c in getattr(scheduler, "_schedulers", [])],
    }


def _load_group_entries(scheduler: Any, index: int, saved: dict[str, Any]) -> None:
    """Group ``index`` of ``scheduler`` takes ``saved`` (``_group_entries``) and the
    scheduler its position (the same for every member of one population)."""
    if type(scheduler).__name__ != saved["class"]:
        raise ConfigError(
            f"cannot load a {saved['class']} schedule's state into a {type(scheduler).__name__}"
        )
    for name, value in saved["entries"].items():
        getattr(scheduler, name)[index] = copy.deepcopy(value)
    for name, value in saved["position"].items():
        setattr(scheduler, name, value)
    for child, state in zip(getattr(scheduler, "_schedulers", []), saved["children"], strict=True):
        _load_group_entries(child, index, state)
