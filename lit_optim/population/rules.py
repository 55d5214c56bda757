"""Vectorized update rules: N members' parameters stacked along dim 0, every scalar
hyperparameter an [N] tensor broadcast over each parameter.

Why not torch.optim: an optimizer takes one lr (per param group) for a whole tensor, and a
stacked [N, …] parameter would need N param groups of views, which torch's optimizers cannot
update in place as one tensor. So the rules of the families people tune most are written out
here, following torch.optim's single-tensor implementations (``torch/optim/sgd.py``, ``adam.py``,
``rmsprop.py``, ``adagrad.py``) in their arithmetic and their order of operations, so that a
member equals its sequential trial to float64 round-off
(``tests/population/test_population_rules.py`` checks each against torch itself). Everything
stays on the device: no per-member Python loop, no host read.

Structural options (``nesterov``, ``amsgrad``, ``centered``) change the algorithm, not a scalar:
they must be equal across the members of one population.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.optimizers import OPTIMIZERS, build_optimizer

__all__ = ["POPULATION_OPTIMIZERS", "RULES", "PopulationUpdate", "torch_defaults"]

# Rule -> the torch.optim class whose single-tensor arithmetic it follows, and the kwargs it
# reads. Their defaults are that class's own (its signature), and which registered optimizers
# use a rule, with what defaults of their own, is the registry's (``population_rule``): no
# table here repeats either.
RULES: dict[str, tuple[type[torch.optim.Optimizer], tuple[str, ...]]] = {
    "sgd": (torch.optim.SGD, ("momentum", "dampening", "nesterov", "weight_decay")),
    "adam": (torch.optim.Adam, ("betas", "eps", "weight_decay", "amsgrad")),
    "adamw": (torch.optim.AdamW, ("betas", "eps", "weight_decay", "amsgrad")),
    "rmsprop": (torch.optim.RMSprop, ("alpha", "eps", "weight_decay", "momentum", "centered")),
    "adagrad": (
        torch.optim.Adagrad,
        ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
    ),
}


def torch_defaults(rule: str) -> dict[str, Any]:
    """The defaults torch's class for ``rule`` gives the kwargs the rule reads."""
    cls, keys = RULES[rule]
    parameters = inspect.signature(cls).parameters
    return {k: parameters[k].default for k in keys}


class _PopulationOptimizers(Mapping):
    """Registry name -> (rule, the registry entry's own defaults) of every registered
    optimizer with a population rule: a live view of the registry (plugins, and entries
    registered after import, included); an alias finds its entry's row."""

    def _table(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {
            info.name: (info.population_rule, dict(info.defaults))
            for info in OPTIMIZERS
            if info.population_rule is not None
        }

    def __getitem__(self, name: str) -> tuple[str, dict[str, Any]]:
        table = self._table()
        if name not in table and isinstance(name, str) and name in OPTIMIZERS:
            name = OPTIMIZERS.get(name).name  # an alias (heavy_ball) of a canonical name
        return table[name]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


POPULATION_OPTIMIZERS: Mapping[str, tuple[str, dict[str, Any]]] = _PopulationOptimizers()
# What a member that names only its lr gets: torch's defaults, except weight decay, which
# build_optimizer (lit_optim's flat hyperparameter) defaults to its own value for every
# optimizer (AdamW's class says 1e-2; a member built one by one gets build_optimizer's).
_BUILD_WEIGHT_DECAY = inspect.signature(build_optimizer).parameters["weight_decay"].default
_TORCH_DEFAULTS = {
    rule: {**torch_defaults(rule), "weight_decay": _BUILD_WEIGHT_DECAY} for rule in RULES
}
_STRUCTURAL = ("nesterov", "amsgrad", "centered")


class PopulationUpdate:
    """One optimizer for N members: ``params`` are [N, …] tensors (their ``.grad`` too),
    ``members`` the per-member kwargs as ``build_optimizer(name, …, lr=…, **kwargs)`` takes
    them (``lr`` required). ``set_lr`` changes every member's lr (a schedule's step)."""

    def __init__(
        self,
        name: str,
        params: Sequence[torch.Tensor],
        members: Sequence[Mapping[str, Any]],
        decay: Sequence[bool] | None = None,
    ) -> None:
        if name not in POPULATION_OPTIMIZERS:
            raise ConfigError(
                f"optimizer {name!r} has no population rule; those that do: "
                f"{', '.join(POPULATION_OPTIMIZERS)}"
            )
        self.rule, defaults = POPULATION_OPTIMIZERS[name]
        self.params = list(params)
        self.n = len(members)
        if not self.params or any(p.shape[0] != self.n for p in self.params):
            raise ConfigError(f"every parameter needs a leading member axis of {self.n}")
        self.name, self._defaults = name, defaults
        merged = self._merged(members)
        self.flags = {}
        for key in _STRUCTURAL:
            values = {bool(m[key]) for m in merged if key in m}
            if len(values) > 1:
                raise ConfigError(
                    f"{key} must be the same for every member of a population "
                    f"(it changes the algorithm), got both"
                )
            self.flags[key] = values.pop() if values else False
        first = self.params[0]
        self.h: dict[str, torch.Tensor] = self._vectors(merged)
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]
        # Which parameters take weight decay (the task exempts biases and norm weights).
        self.decay = list(decay) if decay is not None else [True] * len(self.params)
        self._scratch: list[torch.Tensor | None] = [None] * len(self.params)
        self._note_momentum(self.h.get("momentum", [1.0]))
        # Each member's own step count (Adam's bias correction, SGD's first step, Adagrad's
        # lr decay): members join a running population at step 0. On the device for the
        # arithmetic; on the host as the population step each member joined at, so a step
        # knows without a device read whether some member takes its first step.
        self.steps = torch.zeros(self.n, dtype=first.dtype, device=first.device)
        self._step, self._joined = 0, [0] * self.n

    def _merged(self, members: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each member's kwargs over the registry entry's defaults over torch's."""
        merged = [{**_TORCH_DEFAULTS[self.rule], **self._defaults, **m} for m in members]
        unknown = sorted(set().union(*merged) - set(_TORCH_DEFAULTS[self.rule]) - {"lr"})
        if unknown:
            raise ConfigError(
                f"optimizer {self.name!r} in a population does not take {', '.join(unknown)}"
            )
        return merged

    def _vectors(self, merged: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """{hyperparameter: [N] tensor} of the members' scalars (betas split in two)."""
        like = self.params[0]

        def vector(values):
            return torch.tensor([float(v) for v in values], dtype=like.dtype, device=like.device)

        out = {}
        for key in sorted({k for m in merged for k in m if k not in _STRUCTURAL}):
            if key == "betas":
                out["beta1"] = vector(m["betas"][0] for m in merged)
                out["beta2"] = vector(m["betas"][1] for m in merged)
            else:
                out[key] = vector(m[key] for m in merged)
        return out

    @torch.no_grad()
    def join(self, members: Sequence[Mapping[str, Any]], params: Sequence[torch.Tensor]) -> None:
        """Append ``members`` (kwargs as in the constructor) after the present ones, at their
        step 0 with fresh optimizer state, as a torch optimizer built for them now would
        start; ``params`` are the grown stacked tensors (the newcomers last)."""
        merged = self._merged(members)
        for key in _STRUCTURAL:
            if any(key in m and bool(m[key]) != self.flags[key] for m in merged):
                raise ConfigError(
                    f"{key} must be the same for every member of a population "
                    f"(it changes the algorithm), got both"
                )
        fresh = self._vectors(merged)
        self.h = {k: torch.cat([v, fresh[k]]) for k, v in self.h.items()}
        n = len(members)
        for state in self.state:
            for key, value in state.items():
                new = value.new_zeros((n, *value.shape[1:]))
                if key == "sum":  # Adagrad's accumulator starts at initial_accumulator_value
                    new += fresh["initial_accumulator_value"].view(-1, *[1] * (new.ndim - 1))
                state[key] = torch.cat([value, new])
        self.params = list(params)
        self._scratch = [None] * len(self.params)
        self.steps = torch.cat([self.steps, self.steps.new_zeros(n)])
        self._joined += [self._step] * n
        self.n += n
        self._note_momentum(self.h.get("momentum", [1.0]))

    @torch.no_grad()
    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s (a position) optimizer state, step count and hyperparameters,
        as copies: what ``load_member_state`` puts into a position of this population or of
        a population built afresh (PBT's exploit, and its resume)."""
        return {
            "state": [{k: v[member].clone() for k, v in state.items()} for state in self.state],
            "h": {k: v[member].clone() for k, v in self.h.items()},
            "steps": self.steps[member].clone(),
            "steps_since_joined": self._step - self._joined[member],
        }

    @torch.no_grad()
    def load_member_state(self, member: int, saved: dict[str, Any]) -> None:
        """Position ``member`` takes ``saved`` (``member_state``), bit for bit; state a
        population built afresh has not made yet (before its first step) is made here."""
        for state, values in zip(self.state, saved["state"], strict=True):
            for key, value in values.items():
                if key not in state:
                    state[key] = value.new_zeros((self.n, *value.shape))
                state[key][member] = value
        for key, value in saved["h"].items():
            self.h[key][member] = value
        self.steps[member] = saved["steps"]
        # The population step it joined at, as seen from this population's step count (a
        # resumed member joined before this population's first step: never its "first").
        self._joined[member] = self._step - saved["steps_since_joined"]
        self._note_momentum(self.h.get("momentum", [1.0]))

    def copy_member(self, source: int, target: int) -> None:
        """Member ``target`` (a position) takes ``source``'s optimizer state, step count and
        hyperparameters, bit for bit (PBT's exploit; the parameters are the caller's)."""
        self.load_member_state(target, self.member_state(source))

    @torch.no_grad()
    def keep(self, mask: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
        """Drop the members where ``mask`` is False; ``params`` are the compacted tensors
        (``StackedNetwork.keep`` makes new ones)."""
        mask = mask.to(device=self.h["lr"].device, dtype=torch.bool)
        self.h = {k: v[mask] for k, v in self.h.items()}
        self.state = [{k: v[mask] for k, v in state.items()} for state in self.state]
        self.params = list(params)
        self._scratch = [None] * len(self.params)
        self.n = int(mask.sum())
        self.steps = self.steps[mask]
        self._joined = [j for j, k in zip(self._joined, mask.tolist()) if k]
        self._note_momentum(self.h.get("momentum", [1.0]))

    def set_lr(self, lrs: Sequence[float] | torch.Tensor) -> None:
        self.set("lr", lrs)

    def set(self, key: str, values: Sequence[float] | torch.Tensor) -> None:
        """Every member's value of hyperparameter ``key`` (a schedule's step)."""
        self.h[key] = torch.as_tensor(values, dtype=self.h[key].dtype, device=self.h[key].device)
        if key == "momentum":
            self._note_momentum(values)

    def follow(self, groups: Sequence[Mapping[str, Any]]) -> None:
        """Every member's lr, and the momentum / betas a schedule may cycle (onecycle), from
        its shadow optimizer's param group: what the members' schedules just set."""
        if not groups:  # every member left; newcomers may join
            return
        self.set_lr([g["lr"] for g in groups])  # in the population's dtype: no float32
        if "momentum" in self.h and "momentum" in groups[0]:
            self.set("momentum", [g["momentum"] for g in groups])
        if "beta1" in self.h and "betas" in groups[0]:
            self.set("beta1", [g["betas"][0] for g in groups])
            self.set("beta2", [g["betas"][1] for g in groups])

    def _note_momentum(self, values: Sequence[float] | torch.Tensor) -> None:
        """Which rule variant runs: read here, where the values come from the host (a schedule
        or the members' kwargs), so that a step reads nothing back from the device and the
        common cases (all members with momentum, or none) run no masking kernels."""
        values = values.tolist() if isinstance(values, torch.Tensor) else list(values)
        self._momentum_everywhere = all(v != 0 for v in values)
        self._momentum_nowhere = all(v == 0 for v in values)

    def _b(self, key: str, like: torch.Tensor) -> torch.Tensor:
        """Hyperparameter ``key`` shaped [N, 1, …] to broadcast over ``like``."""
        return self.h[key].view(-1, *([1] * (like.ndim - 1)))

    def _b_steps(self, like: torch.Tensor) -> torch.Tensor:
        """The members' step counts shaped [N, 1, …] to broadcast over ``like``."""
        return self.steps.view(-1, *([1] * (like.ndim - 1)))

    @torch.no_grad()
    def step(self) -> None:
        # Members that take their first step and already have state to merge into (they
        # joined a running population): SGD's first step sets its buffer to the gradient.
        self._first = (self.steps == 0) if self._step in self._joined and self._step else None
        self.steps += 1
        self._step += 1
        for i, (param, state, decays) in enumerate(zip(self.params, self.state, self.decay)):
            if param.grad is None:
                continue
            scratch = self._scratch[i]
            if scratch is None or scratch.shape != param.shape:
                scratch = self._scratch[i] = torch.empty_like(param)
            getattr(self, f"_{self.rule}")(param, param.grad, state, decays, scratch)

    # Each follows torch.optim's _single_tensor_<name> for one parameter, in place where torch
    # is (fresh [N, …] temporaries cost a page-faulting allocation each on CPU); ``tmp`` is a
    # scratch tensor of the parameter's shape. ``grad`` is never written.
    def _decayed(self, p, grad, decays, tmp):
        """grad + weight_decay·p (torch's grad.add(param, alpha=weight_decay)), in ``tmp``."""
        if not decays:  # the task's no-decay group: torch skips the term (weight_decay 0)
            return grad
        return torch.addcmul(grad, p, self._b("weight_decay", p), out=tmp)

    def _sgd(self, p, grad, state, decays, tmp):
        b = lambda k: self._b(k, p)  # noqa: E731
        grad = self._decayed(p, grad, decays, tmp)
        if "buf" not in state:
            state["buf"] = grad.clone()
        else:  # buf·momentum + (1 − dampening)·grad
            state["buf"].mul_(b("momentum")).addcmul_(grad, 1 - b("dampening"))
            if self._first is not None:  # a newcomer's first buffer is its gradient
                mask = self._first.view(-1, *[1] * (p.ndim - 1))
                state["buf"] = torch.where(mask, grad, state["buf"])
        buf = state["buf"]
        if self.flags["nesterov"]:  # torch requires momentum > 0 with nesterov
            step = torch.addcmul(grad, buf, b("momentum"), out=tmp)
        elif self._momentum_everywhere:
            step = buf
        elif self._momentum_nowhere:
            step = grad
        else:  # torch keeps no buffer for momentum 0: the step is then the gradient itself
            step = torch.where(b("momentum") != 0, buf, grad)
        p.addcmul_(step, b("lr"), value=-1)

    def _adam(self, p, grad, state, decays, tmp, decoupled: bool = False):
        b = lambda k: self._b(k, p)  # noqa: E731
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if self.flags["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        if decoupled:
            if decays:
                p.mul_(1 - b("lr") * b("weight_decay"))
        else:
            grad = self._decayed(p, grad, decays, tmp)
        beta1, beta2 = b("beta1"), b("beta2")
        state["exp_avg"].lerp_(grad, (1 - beta1).expand_as(grad))
        # exp_avg_sq·β2 + (1 − β2)·grad² (torch's addcmul with a scalar value; ours varies)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad * (1 - beta2))
        steps = self._b_steps(p)
        bias_correction1 = 1 - beta1**steps
        bias_correction2_sqrt = (1 - beta2**steps) ** 0.5
        second = state["exp_avg_sq"]
        if self.flags["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        denom = torch.sqrt(second, out=tmp).div_(bias_correction2_sqrt).add_(b("eps"))
        # param − (lr / bias_correction1)·exp_avg / denom (torch's addcdiv with value=-step_size)
        p.addcmul_(
            torch.div(state["exp_avg"], denom, out=tmp), b("lr") / bias_correction1, value=-1
        )

    def _adamw(self, p, grad, state, decays, tmp):
        self._adam(p, grad, state, decays, tmp, decoupled=True)

    def _rmsprop(self, p, grad, state, decays, tmp):
        b = lambda k: self._b(k, p)  # noqa: E731
        if not state:
            state["square_avg"] = torch.zeros_like(p)
            if not self._momentum_nowhere:
                state["momentum_buffer"] = torch.zeros_like(p)
            if self.flags["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        grad = self._decayed(p, grad, decays, tmp)
        alpha = b("alpha")
        state["square_avg"].mul_(alpha).addcmul_(grad, grad * (1 - alpha))
        if self.flags["centered"]:
            state["grad_avg"].lerp_(grad, (1 - alpha).expand_as(grad))
            avg = torch.addcmul(
                state["square_avg"], state["grad_avg"], state["grad_avg"], value=-1
            ).sqrt_()
        else:
            avg = state["square_avg"].sqrt()
        avg.add_(b("eps"))
        if self._momentum_nowhere:
            p.addcmul_(grad / avg, b("lr"), value=-1)
            return
        if "momentum_buffer" not in state:  # a schedule gave momentum to a population without
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"] * b("momentum") + grad / avg
        if self._momentum_everywhere:
            state["momentum_buffer"] = buf
            p.addcmul_(buf, b("lr"), value=-1)
            return
        state["momentum_buffer"] = torch.where(b("momentum") > 0, buf, state["momentum_buffer"])
        p.sub_(torch.where(b("momentum") > 0, b("lr") * buf, b("lr") * (grad / avg)))

    def _adagrad(self, p, grad, state, decays, tmp):
        b = lambda k: self._b(k, p)  # noqa: E731
        if not state:
            state["sum"] = torch.zeros_like(p) + b("initial_accumulator_value")
        grad = self._decayed(p, grad, decays, tmp)
        clr = b("lr") / (1 + (self._b_steps(p) - 1) * b("lr_decay"))
        state["sum"].addcmul_(grad, grad)
        std = state["sum"].sqrt().add_(b("eps"))
        p.addcmul_(grad / std, clr, value=-1)
