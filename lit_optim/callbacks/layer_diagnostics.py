"""LayerDiagnostics: per-layer ‖w‖, ‖∇w‖, update ratio and trust ratio, every N steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from typing_extensions import override

from lit_optim.callbacks._grads import grads_of, member_norms, named_trainable, with_grads
from lit_optim.catalog.checks import check_count
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.torch_private import foreach_norm, foreach_sub

__all__ = ["LayerDiagnostics"]


class LayerDiagnostics(L.Callback):
    """The per-layer table that motivates LARS and LAMB, logged over training.

    For every parameter tensor ("layer") with a gradient, every ``every_n_steps`` steps:
    ``w_norm`` ‖w‖, ``grad_norm`` ‖∇w‖, ``update_ratio`` ‖Δw‖/‖w‖ (the step the optimizer
    actually took) and ``trust_ratio`` ‖w‖/‖∇w‖, logged as ``diag/<name>/<quantity>``.

    Hooks: ``on_before_optimizer_step`` (gradients final, weights not yet updated) takes the
    norms with batched foreach kernels and keeps a copy of the weights; ``on_train_batch_end``
    measures Δw. All numbers of a diagnostic step leave the device in one transfer; other
    steps cost nothing.

    Args:
        every_n_steps: how often to measure.
        png: if set, a plot of the update and trust ratios per layer over training is saved
            there at the end (relative paths go under the run's log directory). Needs
            matplotlib.
    """

    QUANTITIES = ("w_norm", "grad_norm", "update_ratio", "trust_ratio")

    def __init__(self, every_n_steps: int = 50, *, png: str | None = None) -> None:
        check_count("every_n_steps", every_n_steps)
        if png is not None:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise ConfigError("png needs matplotlib: pip install matplotlib") from None
        self.every_n_steps, self.png = every_n_steps, png
        self.history: list[tuple[int, dict[str, dict[str, float]]]] = []
        # In a population (lit-tune's default): each member's history, by member name.
        self.member_history: dict[str, list[tuple[int, dict[str, dict[str, float]]]]] = {}
        self._named: list = []
        self._pending: (
            tuple[list[str], Sequence[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None
        ) = None

    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        self._named = named_trainable(pl_module)

    @override
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.sanity_checking or trainer.global_step % self.every_n_steps:
            return
        names, params = with_grads(self._named)
        if not params:
            return
        w_norms = foreach_norm(params)
        g_norms = foreach_norm(grads_of(params))
        before = [p.detach().clone() for p in params]
        self._pending = (names, params, before, [torch.stack(w_norms), torch.stack(g_norms)])

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._pending is None:
            return
        names, params, before, (w, g) = self._pending
        self._pending = None
        d = torch.stack(foreach_norm(foreach_sub([p.detach() for p in params], before)))
        rows = torch.stack([w, g, d / w, w / g]).T.tolist()  # the one host transfer
        step = trainer.global_step - 1  # the step these numbers describe
        self.record(trainer, step, {n: dict(zip(self.QUANTITIES, r)) for n, r in zip(names, rows)})

    # -- a population: the same table per member ---------------------------------------------
    def before_members_step(self, step: int, names: list[str], params: list[torch.Tensor]) -> bool:
        """The population form of ``on_before_optimizer_step``: ``params`` are stacked (a
        leading member axis) with their gradients; ``step`` is the members' own step count.
        Returns whether this step is measured (then ``after_members_step`` must follow)."""
        if step % self.every_n_steps:
            return False
        names, params = with_grads(list(zip(names, params)))
        w = member_norms([p.detach() for p in params])
        g = member_norms(grads_of(params))
        self._pending = (names, params, [p.detach().clone() for p in params], [w, g])
        return True

    def after_members_step(self, trainer, step: int, members: list[str]) -> None:
        """Measure the members' updates of a step ``before_members_step`` took; ``members``:
        their names (a trial each, under lit-tune), in stacked order. Each member's table goes
        to ``member_history[name]`` and is logged as ``diag/<member>/<layer>/<quantity>``."""
        assert self._pending is not None  # before_members_step took this step
        names, params, before, (w, g) = self._pending
        self._pending = None
        d = member_norms(foreach_sub([p.detach() for p in params], before))
        table = torch.stack([w, g, d / w, w / g], dim=-1).tolist()  # [layer][member][q], one read
        for m, member in enumerate(members):
            self.record(
                trainer,
                step,
                {n: dict(zip(self.QUANTITIES, rows[m])) for n, rows in zip(names, table)},
                member=member,
            )

    def record(
        self, trainer, step: int, table: dict[str, dict[str, float]], member: str | None = None
    ) -> None:
        """Keep one step's table (a population member's under its name) and log it."""
        history = self.history if member is None else self.member_history.setdefault(member, [])
        history.append((step, table))
        if trainer.logger is not None:
            prefix = "diag/" if member is None else f"diag/{member}/"
            trainer.logger.log_metrics(
                {f"{prefix}{n}/{q}": v for n, row in table.items() for q, v in row.items()},
                step=step,
            )

    @override
    def on_train_end(self, trainer, pl_module) -> None:
        if not self.png or not trainer.is_global_zero:
            return
        path = Path(self.png)
        if not path.is_absolute():
            path = Path(trainer.log_dir or trainer.default_root_dir) / path
        if self.history:
            self.save_png(path)
        for member, history in self.member_history.items():  # one plot per member, named
            self.save_png(path.with_name(f"{path.stem}.{member}{path.suffix}"), history)

    def save_png(self, path: Path, history: list | None = None) -> Path:
        """Plot ``history`` (this run's, by default) to ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        history = self.history if history is None else history
        steps = [s for s, _ in history]
        names = list(history[-1][1])
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
        for ax, quantity in zip(axes, ("update_ratio", "trust_ratio")):
            for name in names:
                ax.plot(
                    steps,
                    [t[name][quantity] if name in t else float("nan") for _, t in history],
                    label=name,
                )
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_title({"update_ratio": "‖Δw‖ / ‖w‖", "trust_ratio": "‖w‖ / ‖∇w‖"}[quantity])
        axes[1].legend(fontsize=7, loc="best")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    @property
    @override
    def state_key(self) -> str:
        # Two instances in one Trainer keep separate checkpoint state.
        return self._generate_state_key(every_n_steps=self.every_n_steps, png=self.png)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "member_history": self.member_history}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
        self.member_history = state_dict.get("member_history", {})
