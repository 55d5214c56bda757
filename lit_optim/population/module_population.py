"""``ModulePopulation``: N instances of ANY LightningModule trained at once through torch.func.

Each member is the user's own module, built with its own hyperparameters (a trial's recipe);
the members must share structure (the same parameter and buffer names and shapes). Their
parameters and buffers are stacked along a leading member axis
(``torch.func.stack_module_state``) and the module's own ``training_step`` runs once per
member under ``vmap(grad_and_value(functional_call(...)), randomness="different")``: dropout
draws independently per member, BatchNorm statistics are per member (stacked buffers, the
member axis folded into the channels: ``batch_norm.FoldedBatchNorm``), and
what the step ``self.log``s comes back per member as ``has_aux`` outputs. One backward per
member is exactly its own gradient.

The optimizer is each member's own ``configure_optimizers``: its torch optimizer (with its
param groups, their lrs and weight decays) is the member's *shadow*, never stepped on real
gradients, and the lr scheduler Lightning would drive steps it; the population reads each
group's hyperparameters from the shadows every step and applies torch.optim's arithmetic to
the stacked tensors (``PopulationUpdate``). So a member equals its one-by-one run (same seed,
same batches) to float64 round-off, schedules are never re-implemented, and param groups keep
their own lr and decay.

Validation runs ``validation_step`` under ``vmap`` too; a step that cannot (it updates a
torchmetrics ``Metric``, which keeps one state for all members) runs member by member on each
member's own module instead, with the member's stacked tensors swapped in, so its Metric
objects and epoch-end hooks work as in a plain fit. What cannot run in a population at all
raises ``NotVmappable`` with the reason and the first failing operation; the caller trains
those trials one by one.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
from lightning.pytorch.utilities.data import extract_batch_size
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.objective import LoggedDirections
from lit_optim.catalog.rescale import rescale_hyperparameters
from lit_optim.population.batch_norm import FoldedBatchNorm
from lit_optim.population.health import MemberHealth
from lit_optim.population.members import MemberSettings, PopulationMembers
from lit_optim.population.rules import RULES, PopulationUpdate
from lit_optim.population.stacked import NotVmappable

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

__all__ = ["ModulePopulation", "NotVmappable"]


def _rule_of(optimizer: torch.optim.Optimizer) -> str:
    for rule, (cls, _) in RULES.items():
        if type(optimizer) is cls:
            if rule == "adam" and optimizer.defaults.get("decoupled_weight_decay"):
                return "adamw"
            if any(group.get("maximize") for group in optimizer.param_groups):
                break
            return rule
    raise NotVmappable(
        f"optimizer {type(optimizer).__name__} has no population rule (those "
        f"that do: {', '.join(c.__name__ for c, _ in RULES.values())}, "
        "without maximize)"
    )


def _optimizer_and_schedulers(config: Any) -> tuple[torch.optim.Optimizer, list[dict[str, Any]]]:
    """What ``configure_optimizers`` returned, in the forms Lightning documents that a
    population can train: one optimizer, with or without lr scheduler configs."""
    scheds: Any = []
    optimizer: Any  # checked below: one torch Optimizer
    if isinstance(config, torch.optim.Optimizer):
        optimizer = config
    elif isinstance(config, dict):
        optimizer, scheds = config.get("optimizer"), config.get("lr_scheduler") or []
    elif (
        isinstance(config, (list, tuple))
        and len(config) == 2
        and isinstance(config[0], (list, tuple))
    ):
        optimizers, scheds = config
        optimizer = optimizers[0] if len(optimizers) == 1 else None
    elif isinstance(config, (list, tuple)) and len(config) == 1:
        optimizer = config[0]
    else:
        optimizer = None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise NotVmappable(
            "configure_optimizers must return one optimizer (with or without "
            "lr schedulers) to train in a population"
        )
    configs = []
    for sched in scheds if isinstance(scheds, (list, tuple)) else [scheds]:
        sched = dict(sched) if isinstance(sched, dict) else {"scheduler": sched}
        configs.append({"interval": "epoch", "frequency": 1, "monitor": None, **sched})
    return optimizer, configs


class _Collector:
    """Stands in for ``module.log`` while a step runs: keeps what it logs (reduced over an
    epoch as a batch-size weighted mean, or a Metric's compute), and tells ``directions`` what
    each name was logged as (a torchmetrics Metric declares its direction)."""

    def __init__(self, directions: LoggedDirections | None = None) -> None:
        self.values: dict[str, Any] = {}
        self.directions = directions

    def __call__(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if self.directions is not None and not isinstance(value, torch.Tensor):
            self.directions.record(name, value)  # a Metric: outside vmap, once per member
        self.values[name] = value

    def take(self) -> dict[str, Any]:
        values, self.values = self.values, {}
        return values


class _Step(nn.Module):
    """A module whose forward is one of the user module's steps: what ``functional_call``
    runs, so the user's step sees its parameters replaced by one member's."""

    def __init__(self, module: L.LightningModule, hook: str) -> None:
        super().__init__()
        self.module, self.hook = module, hook

    def forward(self, batch: Any, batch_idx: int) -> Any:
        return getattr(self.module, self.hook)(batch, batch_idx)


class ModulePopulation(PopulationMembers, L.LightningModule):
    """``members``: instances of one LightningModule class, each built with its trial's
    hyperparameters and the same initial weights the trial's one-by-one run starts from.

    After each validation epoch ``member_metrics`` maps every epoch-level value the members
    logged to an [N] tensor over the members still in (their original indices: ``alive``);
    ``dropped`` maps a member that left to its reason (non-finite values, or ``drop``).
    """

    def __init__(
        self,
        members: Sequence[L.LightningModule],
        **settings: Unpack[MemberSettings],
    ) -> None:
        super().__init__()
        if not members:
            raise ConfigError("a population needs at least one member")
        shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in members}
        if len(shapes) > 1:
            raise ConfigError(
                "the members of a population must have the same parameter and buffer shapes"
            )
        self.automatic_optimization = False
        # Kept out of the module tree (a plain list): the stacked tensors below are the state.
        self._members = list(members)
        params, buffers = stack_module_state(self._members)
        self._param_names, self._buffer_names = list(params), list(buffers)
        for i, value in enumerate(params.values()):
            self.register_parameter(f"p{i}", nn.Parameter(value.detach().clone()))
        for i, value in enumerate(buffers.values()):
            self.register_buffer(f"b{i}", value.clone())
        self._template = copy.deepcopy(self._members[0])
        # What the members log under each name, as far as it declares a direction.
        self.directions = LoggedDirections()
        self._collector = _Collector()
        self._template.__dict__["log"] = self._collector  # the instance's log, nobody else's
        self._start_members(len(members), settings)
        self._sums: dict[str, list[torch.Tensor]] = {}
        self._per_member_validation: str | None = None
        self.module_name = type(self._members[0]).__name__  # what the members are, for messages

    # -- stacked state ------------------------------------------------------------------------
    def stacked(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"p{i}") for i, name in enumerate(self._param_names)}

    def stacked_buffers(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"b{i}") for i, name in enumerate(self._buffer_names)}

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s (index among ``alive``) parameters and buffers, by name."""
        return {
            k: v[member].detach().clone()
            for k, v in {**self.stacked(), **self.stacked_buffers()}.items()
        }

    # -- optimization -------------------------------------------------------------------------
    def configure_optimizers(self):
        """Each member's own optimizer and schedules become its shadow; one PopulationUpdate
        per param group applies the group's per-member hyperparameters to the stacked
        tensors of that group's parameters."""
        self.run_epochs = self.trainer.max_epochs  # each member's own run, also a newcomer's
        self.shadows = [self._shadow(member) for member in self._members]
        rules = {_rule_of(s["optimizer"]) for s in self.shadows}
        if len(rules) > 1:
            raise NotVmappable(f"the members use different optimizers ({', '.join(sorted(rules))})")
        self.rule = rules.pop()
        self._groups = _common_groups(
            [
                self._group_parameter_names(m, s["optimizer"])
                for m, s in zip(self._members, self.shadows)
            ]
        )
        stacked = self.stacked()
        trained = {n for names, _ in self._groups for n in names}
        for name in set(stacked) - trained:  # no optimizer group: the members never train it
            stacked[name].requires_grad_(False)
        self.updates = [
            PopulationUpdate(
                self.rule,
                [stacked[n] for n in names],
                [
                    self._group_hyper(s["optimizer"].param_groups[k])
                    for s, k in zip(self.shadows, indices)
                ],
            )
            for names, indices in self._groups
        ]
        self._copy_hyper()
        return None  # manual optimization: Lightning runs with its placeholder optimizer

    def _shadow(self, member: L.LightningModule) -> dict[str, Any]:
        """The member's own optimizer and schedules, built by its configure_optimizers against
        the Trainer with its own run length (a newcomer joins a population whose Trainer
        runs on: it is built as its one-by-one run would be)."""
        member.trainer = self.trainer  # its configure_optimizers may read the run length
        loop = self.trainer.fit_loop
        running, loop.max_epochs = loop.max_epochs, self.run_epochs
        try:
            optimizer, schedulers = _optimizer_and_schedulers(member.configure_optimizers())
        finally:
            loop.max_epochs = running
        return {"optimizer": optimizer, "schedulers": schedulers}

    @staticmethod
    def _group_parameter_names(
        member: nn.Module, optimizer: torch.optim.Optimizer
    ) -> list[tuple[str, ...]]:
        names = {id(p): n for n, p in member.named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            unknown = [p for p in group["params"] if id(p) not in names]
            if unknown:
                raise NotVmappable(
                    "an optimizer holds tensors that are not the module's parameters"
                )
            groups.append(tuple(names[id(p)] for p in group["params"]))
        return groups

    def _newcomer_groups(self, member: nn.Module, optimizer: torch.optim.Optimizer) -> list[int]:
        """For each of the population's param groups, the index of the newcomer's group
        that holds all its parameters; NotVmappable if the newcomer trains other parameters
        or splits one of the population's groups."""
        where = {
            n: k
            for k, names in enumerate(self._group_parameter_names(member, optimizer))
            for n in names
        }
        found = [{where.get(n) for n in names} for names, _ in self._groups]
        trained = {n for names, _ in self._groups for n in names}
        if set(where) != trained or any(len(f) != 1 or None in f for f in found):
            raise NotVmappable(
                "a newcomer's optimizer groups or trains the parameters "
                "otherwise than the population's members"
            )
        return [cast(int, f.pop()) for f in found]  # one index each: checked above

    def _group_hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        return {k: group[k] for k in ("lr", *RULES[self.rule][1]) if k in group}

    def _copy_hyper(self) -> None:
        """Each group's lr (and the momentum / betas a schedule may cycle) from the shadows."""
        for update, (_, indices) in zip(self.updates, self._groups):
            update.follow([s["optimizer"].param_groups[k] for s, k in zip(self.shadows, indices)])

    def _step_shadows(self, interval: str, batch_idx: int = 0) -> None:
        for index, shadow in enumerate(self.shadows):
            if interval == "step":
                self._step_shadow(shadow)
            for config in shadow["schedulers"]:
                if config["interval"] != interval:
                    continue
                every = config.get("frequency") or 1
                # Lightning's count: the batch in the epoch, or the member's own epochs.
                count = batch_idx + 1 if interval == "step" else self.epochs_trained[index]
                if count % every:
                    continue
                if config.get("monitor"):
                    values = self.member_metrics.get(config["monitor"])
                    if values is None:
                        raise ConfigError(
                            f"a schedule monitors {config['monitor']!r}, which the "
                            f"module never logs at epoch level; it logs: "
                            f"{', '.join(self.member_metrics) or 'nothing'}"
                        )
                    config["scheduler"].step(float(values[index]))
                else:
                    config["scheduler"].step()
        self._copy_hyper()

    # -- steps --------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.health = MemberHealth(self, self._param_names)
        self._template.trainer = self.trainer  # a step may read self.current_epoch …
        self._template.to(self.device)
        for member in self._members:
            member.to(self.device)

    def _vmapped(self, hook: str, with_grad: bool) -> Callable:
        """``hook`` of the user's module, once per member: (trained params, frozen params,
        buffers, batch, batch_idx) with a leading member axis on the first three."""
        step = _Step(self._template, hook)
        collector = self._collector

        def one(trained, fixed, buffers, batch, batch_idx):
            state = _prefixed({**trained, **fixed, **buffers})
            out = functional_call(step, state, (batch, batch_idx))
            loss = out["loss"] if isinstance(out, dict) else out
            logged = collector.take()
            for name, value in logged.items():
                if not isinstance(value, torch.Tensor):
                    raise NotVmappable(
                        f"{hook} logs {name!r} as a {type(value).__name__}, which "
                        "keeps one state for all members"
                    )
            return (loss, logged) if with_grad else logged

        return vmap(
            grad_and_value(one, has_aux=True) if with_grad else one,
            in_dims=(0, 0, 0, None, None),
            randomness="different",
        )

    def training_step(self, batch, batch_idx):
        self._template.train()
        params = self.stacked()
        trained = {k: v for k, v in params.items() if v.requires_grad}
        fixed = {k: v.detach() for k, v in params.items() if not v.requires_grad}
        try:
            with FoldedBatchNorm(), _no_fallback_notice():
                grads, (loss, logged) = self._vmapped("training_step", with_grad=True)(
                    trained, fixed, self.stacked_buffers(), batch, batch_idx
                )
        except RuntimeError as err:  # .item(), data-dependent control flow …
            raise NotVmappable(
                f"training_step cannot run once per member under vmap: {_first_line(err)}"
            ) from err
        finally:
            self._collector.take()
        for name, grad in grads.items():
            params[name].grad = grad
        self.health.before_update(list(params.values()))
        for update in self.updates:
            update.step()
        self.health.after_update()
        self._step_shadows("step", batch_idx)
        self.spikes.update(loss)
        self._accumulate("train", logged, extract_batch_size(batch))

    def validation_step(self, batch, batch_idx):
        self._template.eval()
        if self._per_member_validation is None:
            try:
                with _no_fallback_notice():
                    logged = self._vmapped("validation_step", with_grad=False)(
                        self.stacked(), {}, self.stacked_buffers(), batch, batch_idx
                    )
            except (NotVmappable, RuntimeError) as err:
                self._collector.take()
                self._per_member_validation = _first_line(err)
            else:
                self._accumulate("val", logged, extract_batch_size(batch))
                return
        self._validate_member_by_member(batch, batch_idx)

    def _validate_member_by_member(self, batch, batch_idx) -> None:
        params, buffers = self.stacked(), self.stacked_buffers()
        size = extract_batch_size(batch)
        for position, member in enumerate(self._members):
            member.eval()
            collector = _Collector(self.directions)
            member.__dict__["log"] = collector
            state = {k: v[position] for k, v in {**params, **buffers}.items()}
            functional_call(_Step(member, "validation_step"), _prefixed(state), (batch, batch_idx))
            logs = self._member_logs.setdefault(position, {})
            for name, value in collector.values.items():
                if isinstance(value, torch.Tensor):
                    _add_weighted(logs, name, value, size)
                else:  # a Metric: computed once at the epoch's end
                    logs[name] = value

    # -- epoch values -------------------------------------------------------------------------
    def _accumulate(self, stage: str, logged: dict[str, torch.Tensor], size: int) -> None:
        for name, value in logged.items():
            _add_weighted(self._sums, f"{stage}:{name}", value, size)

    def on_validation_epoch_start(self) -> None:
        self._member_logs: dict[int, dict[str, Any]] = {}

    def on_validation_epoch_end(self) -> None:
        epoch = self._epoch_values("val")
        if self._member_logs:  # validated member by member: Lightning's epoch reduction
            for name in self._member_logs[0]:
                values = []
                for position in range(len(self._members)):
                    value = self._member_logs[position][name]
                    if isinstance(value, list):
                        values.append(value[0] / value[1])
                    else:  # a Metric: computed and reset, as Lightning does at the epoch's end
                        values.append(value.compute().to(torch.float64).reshape(()))
                        value.reset()
                epoch[name] = torch.stack(values).to(self.device)
        if self.trainer.sanity_checking:
            return
        self.member_metrics.update(epoch)

    def on_train_epoch_end(self) -> None:
        self.epochs_trained = [e + 1 for e in self.epochs_trained]
        self.member_metrics.update(self._epoch_values("train"))
        assert self.health is not None  # made when the fit started
        self.member_metrics.update(self.health.epoch_metrics())
        self._step_shadows("epoch")
        bad = self.spikes.bad(len(self.alive), self.device).clone()
        for values in self.member_metrics.values():
            bad |= ~torch.isfinite(values)
        for p in self.stacked().values():
            bad |= ~torch.isfinite(p.detach().flatten(1)).all(dim=1)
        self._leave_if_diverged(bad, "non-finite or spiking loss, non-finite metric or weights")
        if self.on_epoch_end is not None:  # members leave and join between epochs
            self.on_epoch_end(self)

    def _epoch_values(self, stage: str) -> dict[str, Any]:
        prefix = f"{stage}:"
        out = {}
        for key in [k for k in self._sums if k.startswith(prefix)]:
            total, count = self._sums.pop(key)
            name = key[len(prefix) :]
            out[name] = total / count
        return out

    # -- membership ---------------------------------------------------------------------------
    def drop(self, keep: torch.Tensor, reason: str) -> None:
        """Remove the members where ``keep`` is False (pruned by their trial, or diverged)."""
        keep = keep.to(torch.bool).cpu()
        if bool(keep.all()):
            return
        flags = keep.tolist()
        for index, stays in zip(self.alive, flags):
            if not stays:
                self.dropped[index] = reason
        device_keep = keep.to(self.device)
        for i, name in enumerate(self._param_names):
            old = getattr(self, f"p{i}")
            new = nn.Parameter(old.detach()[device_keep].clone(), requires_grad=old.requires_grad)
            setattr(self, f"p{i}", new)
        for i in range(len(self._buffer_names)):
            setattr(self, f"b{i}", getattr(self, f"b{i}")[device_keep].clone())
        self.spikes.keep(device_keep)
        if self.health is not None:
            self.health.keep(keep)
        stacked = self.stacked()
        for update, (names, _) in zip(self.updates, self._groups):
            update.keep(device_keep, [stacked[n] for n in names])
        self._groups = [
            (names, tuple(k for k, f in zip(indices, flags) if f))
            for names, indices in self._groups
        ]
        self.shadows = [s for s, k in zip(self.shadows, flags) if k]
        self._members = [m for m, k in zip(self._members, flags) if k]
        self.alive = [i for i, k in zip(self.alive, flags) if k]
        self.epochs_trained = [e for e, k in zip(self.epochs_trained, flags) if k]
        self.member_metrics = {k: v[device_keep] for k, v in self.member_metrics.items()}
        self._sums = {k: [v[0][device_keep], v[1]] for k, v in self._sums.items()}
        if not self.alive:  # nobody left: the fit ends here, unless newcomers may join
            self.trainer.should_stop = self.trainer.should_stop or self.stop_when_empty

    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s (a position in ``alive``) whole state, as copies: parameters,
        buffers, optimizer state and step count, its shadow optimizer's and schedules' state
        (lr, schedule position), epochs trained, spike and clipping state, last epoch values.
        ``load_member_state`` puts it into a position of this population (PBT's exploit) or
        of one built afresh from the same recipes (PBT's resume); ``torch.save`` keeps it."""
        shadow = self.shadows[member]
        tensors = {**self.stacked(), **self.stacked_buffers()}
        return {
            "tensors": {name: value[member].detach().clone() for name, value in tensors.items()},
            "updates": [update.member_state(member) for update in self.updates],
            # Deep copies: a scheduler's state_dict holds its own lists (base_lrs …), which
            # an explore of the copy rescales in place.
            "optimizer": copy.deepcopy(shadow["optimizer"].state_dict()),
            "schedulers": [
                copy.deepcopy(c["scheduler"].state_dict()) for c in shadow["schedulers"]
            ],
            "stepped": shadow.get("stepped", False),
            "records": self._member_records(member),
        }

    @torch.no_grad()
    def load_member_state(self, member: int, saved: dict[str, Any]) -> None:
        """Position ``member`` becomes ``saved`` (``member_state``), bit for bit; it keeps its
        name and index."""
        shadow = self.shadows[member]
        groups = len(saved["optimizer"]["param_groups"])
        if groups != len(shadow["optimizer"].param_groups):
            raise ConfigError(
                f"{self.member_names[self.alive[member]]} cannot take a member's state whose "
                "optimizer groups the parameters otherwise (a weight decay of 0 merges the "
                "no-decay group)"
            )
        tensors = {**self.stacked(), **self.stacked_buffers()}
        for name, value in saved["tensors"].items():
            tensors[name][member] = value
        for update, state in zip(self.updates, saved["updates"], strict=True):
            update.load_member_state(member, state)
        shadow["optimizer"].load_state_dict(copy.deepcopy(saved["optimizer"]))
        for config, state in zip(shadow["schedulers"], saved["schedulers"], strict=True):
            config["scheduler"].load_state_dict(copy.deepcopy(state))
        shadow["stepped"] = saved["stepped"]
        self._load_records(member, saved["records"])
        self._copy_hyper()

    @torch.no_grad()
    def rescale_member(self, member: int, *, lr: float = 1.0, weight_decay: float = 1.0) -> None:
        """PBT's explore: member ``member``'s (a position in ``alive``) lr in every param
        group, and every lr its schedules keep, times ``lr``; its weight decay times
        ``weight_decay``; as ``HyperparameterSchedule`` does to a replay of it."""
        shadow = self.shadows[member]
        rescale_hyperparameters(
            shadow["optimizer"],
            [c["scheduler"] for c in shadow["schedulers"]],
            lr=lr,
            weight_decay=weight_decay,
        )
        for update, (_, indices) in zip(self.updates, self._groups):
            if "weight_decay" in update.h:
                group = shadow["optimizer"].param_groups[indices[member]]
                update.h["weight_decay"][member] = group["weight_decay"]
        self._copy_hyper()

    def join(self, members: Sequence[L.LightningModule], names: Sequence[str]) -> list[int]:
        """Add ``members`` (built as ``__init__``'s, each with its own hyperparameters and
        initial weights) after the present ones, between epochs; returns their indices. Each
        starts at its own epoch 0 and step 0: fresh optimizer state, its own schedules built
        for its own run. Raises NotVmappable when a newcomer's optimizer groups or trains its
        parameters otherwise than the population does."""
        members, names = list(members), list(names)
        shapes = {
            tuple((k, tuple(v.shape)) for k, v in m.state_dict().items())
            for m in [self._template, *members]
        }
        if len(shapes) > 1:
            raise ConfigError(
                "the members of a population must have the same parameter and buffer shapes"
            )
        shadows = [self._shadow(member.to(self.device)) for member in members]
        if {_rule_of(s["optimizer"]) for s in shadows} != {self.rule}:
            raise NotVmappable(f"a newcomer's optimizer is not the population's ({self.rule})")
        per_member = [self._newcomer_groups(m, s["optimizer"]) for m, s in zip(members, shadows)]
        params, buffers = stack_module_state(members)
        for i, name in enumerate(self._param_names):
            old = getattr(self, f"p{i}")
            grown = torch.cat([old.detach(), params[name].detach().to(old.device)])
            setattr(self, f"p{i}", nn.Parameter(grown, requires_grad=old.requires_grad))
        for i, name in enumerate(self._buffer_names):
            old = getattr(self, f"b{i}")
            setattr(self, f"b{i}", torch.cat([old, buffers[name].to(old.device)]))
        stacked = self.stacked()
        for k, (update, (group, _)) in enumerate(zip(self.updates, self._groups)):
            update.join(
                [
                    self._group_hyper(s["optimizer"].param_groups[own[k]])
                    for s, own in zip(shadows, per_member)
                ],
                [stacked[n] for n in group],
            )
        self._groups = [
            (group, (*known, *(own[k] for own in per_member)))
            for k, (group, known) in enumerate(self._groups)
        ]
        self.shadows += shadows
        self._members += members
        new = self._record_newcomers(names)
        self._copy_hyper()
        return new


def _common_groups(
    per_member: list[list[tuple[str, ...]]],
) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    """The members' param groups (parameter names, per member) as groups every member agrees
    on: parameters that share a group in every member, each with that group's index in each
    member's optimizer. Members may group differently (one with weight decay splits biases
    off, one without keeps one group) as long as they train the same parameters."""
    where = [{n: k for k, names in enumerate(groups) for n in names} for groups in per_member]
    if any(w.keys() != where[0].keys() for w in where):
        raise NotVmappable("the members' optimizers train different parameters")
    common: dict[tuple[int, ...], list[str]] = {}
    for names in per_member[0]:
        for name in names:
            common.setdefault(tuple(w[name] for w in where), []).append(name)
    return [(tuple(names), indices) for indices, names in common.items()]


def _add_weighted(sums: dict[str, Any], key: str, value: torch.Tensor, size: int) -> None:
    """``sums[key]`` = [Σ value·size, Σ size]: Lightning's epoch mean of a logged value,
    weighted by batch size (float64, on the value's device: no host read)."""
    value = value.detach().to(torch.float64)
    total = sums.setdefault(key, [torch.zeros_like(value), 0])
    total[0] += value * size
    total[1] += size


def _prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names as ``_Step`` holds them (the user's module is its ``module``)."""
    return {f"module.{k}": v for k, v in state.items()}


@contextlib.contextmanager
def _no_fallback_notice():
    """Quiet torch.func's "performance drop … batching rule for aten::bincount" notice: it is
    about torch's internals (an op vmap runs in a loop), a user can do nothing about it, and
    a Metric's update, which the validation fallback above handles, triggers it every run."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"There is a performance drop because we "
            r"have not yet implemented the batching rule",
        )
        yield


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
