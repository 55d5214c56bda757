"""``StackedNetwork``: N copies of one network as stacked [N, …] parameters, run together with
``torch.vmap`` over ``torch.func.functional_call`` (torch.func's model-ensembling recipe).

Every member sees the same input batch (members of a population share data, batch size and
seed, as their sequential trials would); each gets its own output. The training loss is the
sum of the per-member mean losses, so one backward gives each member exactly its own gradient
(∂/∂θ_i of Σ_j L_j is ∂L_i/∂θ_i), and a member whose loss is NaN spoils no other member's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from lit_optim.catalog.errors import ConfigError, LitOptimError

__all__ = ["NotVmappable", "StackedNetwork"]


class NotVmappable(LitOptimError):
    """This module (or its optimizer) cannot train as a population; the message says why."""


class StackedNetwork(nn.Module):
    """The members' parameters as ``nn.Parameter`` tensors of shape [N, …] (so an optimizer,
    a checkpoint or ``.to(device)`` sees N members as one module); buffers stacked likewise."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("a population needs at least one member")
        shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in members}
        if len(shapes) > 1:
            raise ConfigError("the members of a population must have the same network shape")
        params, buffers = torch.func.stack_module_state(list(members))
        # The one copy whose structure functional_call runs; its own tensors are never used.
        self._skeleton = [copy.deepcopy(members[0]).to("meta")]
        self._names = list(params)
        self._chain = _linear_chain(members[0])
        self._input_major = {
            f"{item}.weight" for kind, item in self._chain or () if kind == "linear"
        }
        for i, (name, value) in enumerate(params.items()):
            self.register_parameter(f"p{i}", nn.Parameter(self._laid_out(name, value.detach())))
        self._buffer_names = list(buffers)
        for i, (name, value) in enumerate(buffers.items()):
            self.register_buffer(f"b{i}", value.clone())

    def _laid_out(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A copy of stacked parameter ``name`` in the memory layout the forward wants.

        A chain's Linear weights keep their [N, out, in] shape (the members' state_dicts,
        the update rules and checkpoints see nn.Linear's shape) but are stored input-major,
        [N, in, out] in memory, so that ``weight.transpose(1, 2)`` is contiguous for the
        batched matmul and its gradient arrives in the same layout (autograd then stores it
        without a copy, and the update rules' temporaries follow it): fwd+bwd of the digits
        MLP at N=32 is faster so (bench/README.md, costs).
        """
        if name in self._input_major:
            return value.transpose(1, 2).contiguous().transpose(1, 2)
        return value.clone()

    @property
    def first_parameter(self) -> torch.Tensor:
        """The stacked tensor of the members' first parameter: their count, their device."""
        return cast(torch.Tensor, self.p0)

    @property
    def size(self) -> int:
        return self.first_parameter.shape[0]

    def stacked(self) -> dict[str, torch.Tensor]:
        """{parameter name in the member network: its [N, …] tensor}."""
        return {name: getattr(self, f"p{i}") for i, name in enumerate(self._names)}

    def stacked_buffers(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"b{i}") for i, name in enumerate(self._buffer_names)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, …] → [N, B, …]: every member on the same batch."""
        if self._chain is not None:
            return self._forward_chain(x)
        skeleton = self._skeleton[0]
        skeleton.train(self.training)  # kept out of the module tree: follow train()/eval() here

        def one(params, buffers, inputs):
            return torch.func.functional_call(skeleton, (params, buffers), (inputs,))

        try:
            # "different": dropout (or any random op) draws its own numbers per member.
            return torch.vmap(one, in_dims=(0, 0, None), randomness="different")(
                self.stacked(), self.stacked_buffers(), x
            )
        except RuntimeError as err:  # an op with no batching rule (nn.GRU's aten::gru …)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise NotVmappable(
                f"the network cannot run once per member under vmap: {first}"
            ) from err

    def _forward_chain(self, x: torch.Tensor) -> torch.Tensor:
        """A Flatten/Linear/activation chain as batched matmuls, one ``baddbmm`` per Linear
        (the first reads the shared batch through an expanded view). The same arithmetic as
        the vmap path, and faster for fwd+bwd of the digits MLP (bench/README.md, costs):
        vmap's batching rules add copies and dispatch around each matmul. The first Linear
        is not one GEMM of the batch against all members' weights side by side (no faster,
        measured there): MKL picks its AVX-512 kernel by the GEMM's
        width, so dropping a member changed the others' results in the last bits, and a
        population without a diverged member must compute exactly as one that never had it."""
        params = self.stacked()
        h, shared = x, True  # shared: one [B, …] tensor all members read, not yet [N, B, …]
        for kind, item in self._chain or ():
            item = cast(Any, item)  # a Flatten, a Linear's name, a dropout p or an activation
            if kind == "flatten":
                h = item(h) if shared else h.flatten(item.start_dim + 1, item.end_dim)
            elif kind == "linear":
                weight, bias = params[f"{item}.weight"], params.get(f"{item}.bias")
                if shared:
                    h, shared = h.expand(weight.shape[0], *h.shape), False
                if bias is None:
                    h = torch.bmm(h, weight.transpose(1, 2))
                else:
                    h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            elif kind == "dropout":  # on [N, B, …]: an independent mask per member
                h = F.dropout(h, item, self.training)
            else:  # a parameter-free activation
                h = item(h)
        return h

    @staticmethod
    def member_losses(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[N] cross-entropy means, one per member, from [N, B, C] logits and [B] targets."""
        n, b = logits.shape[:2]
        losses = F.cross_entropy(logits.reshape(n * b, -1), target.repeat(n), reduction="none")
        return losses.view(n, b).mean(dim=1)

    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i`` as the state_dict of one network (for its checkpoint or export)."""
        out = {
            name: t[i].detach().clone(memory_format=torch.contiguous_format)
            for name, t in self.stacked().items()
        }
        out.update({name: t[i].clone() for name, t in self.stacked_buffers().items()})
        return out

    @torch.no_grad()
    def keep(self, mask: torch.Tensor) -> None:
        """Drop the members where ``mask`` is False (pruned or diverged): the stacked tensors
        are compacted, so the rest compute exactly as a population without them."""
        device = self.first_parameter.device  # with no member left: empty until a join
        mask = mask.to(device=device, dtype=torch.bool)
        for i, name in enumerate(self._names):
            old = getattr(self, f"p{i}")
            setattr(self, f"p{i}", nn.Parameter(self._laid_out(name, old.detach()[mask])))
        for i in range(len(self._buffer_names)):
            setattr(self, f"b{i}", getattr(self, f"b{i}")[mask].clone())

    @torch.no_grad()
    def join(self, members: Sequence[nn.Module]) -> None:
        """Append ``members`` (networks of the same shape) after the present ones."""
        params, buffers = torch.func.stack_module_state(list(members))
        for i, name in enumerate(self._names):
            old = getattr(self, f"p{i}").detach()
            grown = torch.cat([old, params[name].detach().to(old.device, old.dtype)])
            setattr(self, f"p{i}", nn.Parameter(self._laid_out(name, grown)))
        for i, name in enumerate(self._buffer_names):
            old = getattr(self, f"b{i}")
            setattr(self, f"b{i}", torch.cat([old, buffers[name].to(old.device, old.dtype)]))


# Activations without parameters or randomness: the same module works on [B, …] and [N, B, …].
_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Identity)


def _linear_chain(module: nn.Module) -> list[tuple[str, object]] | None:
    """``module`` as [(kind, item)] if it is an ``nn.Sequential`` (its own forward) of
    Flatten, Linear, elementwise activations and Dropout (after a Linear), starting with a
    Flatten or Linear; None for anything else, which runs through vmap."""
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return None
    chain: list[tuple[str, object]] = []
    for name, child in module.named_children():
        if (
            type(child) is nn.Flatten
            and child.start_dim == 1
            and not any(kind == "linear" for kind, _ in chain)
        ):
            chain.append(("flatten", child))
        elif type(child) is nn.Linear:
            chain.append(("linear", name))
        elif type(child) in _ELEMENTWISE and chain and chain[-1][0] == "linear":
            chain.append(("activation", copy.deepcopy(child)))
        elif type(child) is nn.Dropout and chain and chain[-1][0] in ("linear", "activation"):
            chain.append(("dropout", child.p))  # after a Linear: already one tensor a member
        else:
            return None
    return chain if chain and chain[0][0] in ("flatten", "linear") else None
