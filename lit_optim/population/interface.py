"""What every population offers its owner (a tuner, a test): ``ModulePopulation`` (any
LightningModule, through torch.func) and ``PopulationTask`` (ClassificationTask's batched
matmuls) both implement it, and ``tuning.runner.population`` drives either through it alone.

Members are named two ways: an *index* (the member's place in the order members were added,
never reused: ``alive`` lists the indices still in, ``dropped`` maps the others to their
reason) and a *position* (its place among ``alive`` now: the row of its stacked tensors and
of every ``member_metrics`` vector).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import lightning as L
    import torch

    from lit_optim.catalog.objective import LoggedDirections

__all__ = ["Population"]


@runtime_checkable
class Population(Protocol):
    alive: list[int]  # indices of the members still in, in position order
    dropped: dict[int, str]  # index -> why it left ("pruned", "complete", a divergence)
    epochs_trained: list[int]  # per position: the member's own epochs
    member_names: list[str]  # per index: what it logs under, in messages and plots
    member_metrics: dict[str, torch.Tensor]  # after each epoch: name -> [positions] values
    module_name: str  # what the members are, for messages
    # What the members log under each name, as far as it declares a direction (None where
    # the population logs only names of its own: ClassificationTask's val_loss, val_acc).
    directions: LoggedDirections | None
    stop_when_empty: bool  # end the fit once no member is left (else the owner decides)
    # A diverged member leaves, unless the owner replaces it: then ``diverged`` lists it
    # ({position: reason}) when ``on_epoch_end`` runs.
    replace_diverged: bool
    diverged: dict[int, str]
    on_epoch_end: Callable[[Any], None] | None  # the owner's hook between epochs

    @property
    def trainer(self) -> L.Trainer:
        """The Trainer fitting it (a LightningModule's)."""

    def drop(self, keep: torch.Tensor, reason: str) -> None:
        """Remove the members whose position is False in ``keep``."""

    def join(self, members: Sequence[Any], names: Sequence[str]) -> list[int]:
        """Add members between epochs, each at its own epoch 0 and step 0; their indices."""

    def member_state(self, member: int) -> dict[str, Any]:
        """Position ``member``'s whole state (weights, buffers, optimizer state and step count,
        schedule position, spike and clipping state, last epoch values) as copies, in types
        ``torch.save`` keeps and ``torch.load(weights_only=True)`` reads."""

    def load_member_state(self, member: int, saved: dict[str, Any]) -> None:
        """Position ``member`` becomes ``saved`` (``member_state`` of this population or of
        one built from the same recipes), bit for bit."""

    def copy_member(self, source: int, target: int) -> None:
        """Position ``target`` becomes a bit-for-bit copy of position ``source``."""

    def rescale_member(self, member: int, *, lr: float = 1.0, weight_decay: float = 1.0) -> None:
        """Position ``member``'s lr (its schedule's too) and weight decay times factors."""
