"""A running population's state between two epochs, and how a population built afresh from
the same members goes on from it: what resuming population based training after a kill needs
(``lit-tune run --algorithm pbt`` saves one every interval).

A snapshot is plain data that ``torch.save`` keeps and ``torch.load(weights_only=True)``
reads: every member's state (``member_state``: weights, buffers, optimizer state and step
count, schedule position, spike and clipping state, last epoch values), the epoch the fit
stands at, and the random generators' states: the global ones and those the training
DataLoaders hold (``DataLoader(generator=…)``, their samplers'). ``ResumeFrom`` puts them back
when the new fit starts, before its first epoch draws its batches: a data module that orders
batches by epoch (``set_epoch``, as lit-optim's and DistributedSampler do), by the global
generator (a shuffled DataLoader) or by a generator of its loader's gives the batches the
stopped fit would have drawn next, so the resumed members go on bit for bit.

Lightning's own checkpoint resume (``ckpt_path``) restores a fit from an ``on_train_epoch_end``
checkpoint by replaying the end of that epoch's loop; a population's members are told and
replaced there, so the fit is started afresh at the snapshot's epoch instead.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

if TYPE_CHECKING:
    from lit_optim.population.interface import Population

__all__ = ["ResumeFrom", "take_snapshot"]


def take_snapshot(population: Population, epoch: int) -> dict[str, Any]:
    """``population``'s state after ``epoch`` epochs of its fit (call it between epochs:
    its ``on_epoch_end``), as copies."""
    loaders = [g.get_state() for g in _loader_generators(population.trainer.train_dataloader)]
    return {
        "loaders": loaders,
        "epoch": epoch,
        "members": [population.member_state(p) for p in range(len(population.alive))],
        "random": {
            "torch": torch.get_rng_state(),
            # numpy's as lists of numbers: weights_only loads no ndarray
            "numpy": _numpy_state(),
            "python": random.getstate(),  # tuples and ints: weights_only reads them
        },
    }


def _numpy_state() -> list[Any]:
    _, keys, *rest = cast(tuple, np.random.get_state(legacy=True))  # MT19937, its keys, …
    return [keys.tolist(), *rest]


class ResumeFrom(L.Callback):
    """Its fit goes on from ``snapshot``: when training starts (after the population built its
    optimizers and schedules, before the first epoch draws its batches) each position takes
    its member's state, the fit's epoch counter is set to the snapshot's epoch, and the random
    generators get their states back. The population must have been built from the same
    members, in the same order."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        members = self.snapshot["members"]
        if len(members) != len(pl_module.alive):
            raise ValueError(
                f"the snapshot holds {len(members)} members, the population {len(pl_module.alive)}"
            )
        for position, state in enumerate(members):
            pl_module.load_member_state(position, state)
        _start_at_epoch(trainer, self.snapshot["epoch"])
        state = self.snapshot["random"]
        torch.set_rng_state(state["torch"])
        keys, *rest = state["numpy"]
        np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), *rest))
        random.setstate(state["python"])
        # The loaders were built afresh for this fit (their generators at their seeds): they
        # exist by now, and draw their first epoch's order after this hook.
        generators = _loader_generators(trainer.train_dataloader)
        if len(generators) != len(self.snapshot["loaders"]):
            raise ValueError(
                f"the snapshot holds {len(self.snapshot['loaders'])} loader generators, the "
                f"fit's training loaders {len(generators)}: not the same data module"
            )
        for generator, saved in zip(generators, self.snapshot["loaders"]):
            generator.set_state(saved)


def _loader_generators(loaders: Any) -> list[torch.Generator]:
    """The random generators the training loaders draw their order from (a DataLoader's own,
    its sampler's, its batch sampler's sampler's), each once, in a fixed order. Loaders in a
    list or dict (Lightning's several training loaders) are walked in order."""
    found: dict[int, torch.Generator] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)
        elif isinstance(node, DataLoader):
            batch_sampler = getattr(node, "batch_sampler", None)
            for owner in (node, node.sampler, getattr(batch_sampler, "sampler", None)):
                generator = getattr(owner, "generator", None)
                if isinstance(generator, torch.Generator):
                    found.setdefault(id(generator), generator)

    walk(loaders)
    return list(found.values())


def _start_at_epoch(trainer: L.Trainer, epoch: int) -> None:
    """The fit loop's epoch counters (what ``current_epoch`` reads, and the epoch the loop
    hands a sampler's ``set_epoch``) at ``epoch`` epochs done: as a checkpoint restore leaves
    them, through the progress tracker's own ``load_state_dict``. Pinned by
    tests/population/test_population_resume.py, whose digits batches follow ``set_epoch``."""
    counts = dict.fromkeys(("ready", "started", "processed", "completed"), epoch)
    trainer.fit_loop.epoch_progress.load_state_dict({"total": counts, "current": counts})
