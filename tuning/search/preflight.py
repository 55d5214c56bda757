"""Checks before trial 0: the recipe with the space's first values is parsed (not fitted) into
the same LightningCLI objects a trial builds, and every space path is looked up in the classes
the recipe names. A mistake ends the command with one line before any study is created or
changed; a recipe naming a user's own LightningModule gets exactly the same checks.

A module may declare ``LOGGED_METRICS`` (ClassificationTask does), and the space's metric is
checked against it before trial 0. Otherwise whether the metric is logged can only be known
once the module has trained and validated, so ``MetricCheck`` (a callback in every trial) stops
the study after the first trial's first epoch if the metric is missing, listing the metrics that
are logged, or if the Metric logged under it ranks the other way than the study.

The study's direction is the space's ``direction:``, else the metric's own: a standard name's,
else the torchmetrics Metric the module logs under it, which ``resolve_direction`` learns from
one training and one validation batch of a run as long as the trials' (``LoggedProbe``)
before trial 0.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback

from lit_optim import (
    ConfigError,
    DirectionError,
    LitOptimError,
    Objective,
    logged_directions,
    resolve_objective,
)
from lit_optim.catalog import did_you_mean
from tuning.search.recipe import apply_overrides, write_recipe
from tuning.search.space import SearchSpace

__all__ = [
    "LoggedProbe",
    "MetricCheck",
    "MetricDirectionError",
    "MetricNotLoggedError",
    "build_trial_objects",
    "check_before_trial_0",
    "parse_recipe",
    "resolve_direction",
]


class MetricNotLoggedError(LitOptimError):
    """The space's metric is not among what the module logs: no trial can ever report it."""

    @classmethod
    def naming(
        cls,
        metric: str,
        module: str,
        logged: Sequence[str],
        *,
        what: str = "the search space's metric",
        fix: str = "set metric: in the search space",
    ) -> MetricNotLoggedError:
        logged = sorted(logged)
        hint = did_you_mean(metric, logged)
        return cls(
            f"{what} {metric!r} is never logged by {module}; it logs: "
            f"{', '.join(logged) or 'nothing'}{'; ' + hint if hint else ''} ({fix})"
        )


class MetricDirectionError(MetricNotLoggedError):
    """The Metric logged under the space's metric ranks the other way than the study: no trial
    could be ranked right, so the study stops as for a metric never logged."""


def build_trial_objects(recipe_path: Path, *trainer_args: str):
    """LightningCLI objects for a trial's merged recipe; ConfigError with one line if invalid."""
    from lit_optim.cli import cli_objects, config_error_line

    try:
        return cli_objects(recipe_path, *trainer_args)
    except Exception as err:  # noqa: BLE001 - sorted by config_error_line
        line = config_error_line(err)
        if line is None:
            raise
        raise ConfigError(line) from None


def parse_recipe(
    recipe: dict[str, Any], trainer_args: Sequence[str], what: str = "the recipe is invalid"
):
    """The LightningCLI objects of a recipe dict, parsed from a temporary file (nothing is
    written where the user looks); ConfigError ``"{what}: <one line>"`` if it is invalid."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return build_trial_objects(
                write_recipe(recipe, Path(tmp) / "recipe.yaml"), *trainer_args
            )
        except ConfigError as err:
            raise ConfigError(f"{what}: {err}") from None


def check_before_trial_0(
    recipe: dict[str, Any], space: SearchSpace, trainer_args: Sequence[str]
) -> None:
    """Parse the recipe, look every space path up in its classes, then parse it with the
    space's first values, with each other categorical value, and with the high end of each
    range (about 0.1 s a parse)."""
    cli = parse_recipe(recipe, trainer_args)
    for param in space.params:
        _check_path(cli.config, param.path)
    # A module that declares what it logs (ClassificationTask does) is checked now; others are
    # checked by MetricCheck after the first trial's first epoch.
    declared = getattr(type(cli.model), "LOGGED_METRICS", None)
    if declared is not None and space.metric not in declared:
        hint = did_you_mean(space.metric, declared)
        raise ConfigError(
            f"the search space's metric {space.metric!r} is never logged by "
            f"{type(cli.model).__name__}; it logs: {', '.join(declared)}"
            f"{'; ' + hint if hint else ''} (set metric: in the search space)"
        )
    parse_recipe(
        apply_overrides(recipe, space.first_values()),
        trainer_args,
        "the recipe with the search space's first values is invalid",
    )
    # Each categorical value on its own, with the parameters it switches on: a batch size of 0,
    # or momentum offered to adam without a `when:`, fails here and not in some later trial.
    for path, value in space.other_choices():
        parse_recipe(
            apply_overrides(recipe, space.first_values(**{path: value})),
            trainer_args,
            f"search space: {path}: {value!r} is invalid",
        )
    for path, value in space.range_ends():
        parse_recipe(
            apply_overrides(recipe, space.first_values(**{path: value})),
            trainer_args,
            f"search space: {path}: its range reaches {value!r}, which is invalid",
        )


def resolve_direction(
    recipe: dict[str, Any], space: SearchSpace, trainer_args: Sequence[str]
) -> str:
    """The study's direction (``maximize``/``minimize``): the space's, else a standard name's,
    else the Metric the module logs under the space's metric. Always after one batch of the
    recipe with the space's first values (``LoggedProbe``), which builds the module's
    optimizer and schedule for the real run's length: a warmup not shorter than the training
    is one ConfigError here, not a study whose every trial is pruned "invalid configuration".
    A metric never logged in that batch, or logged with no direction, is one ConfigError too
    where the direction must come from it."""
    given_as = "the search space's direction"
    first = apply_overrides(recipe, space.first_values())
    known = resolve_objective(space.metric, space.direction, given_as=given_as, required=False)
    if known is not None:
        try:
            LoggedProbe(first, trainer_args)
        except LitOptimError:
            raise
        except Exception:  # noqa: BLE001 - the module's own error: each trial records it
            pass  # (fail_reason, and --max-failures stops the study), as without the probe
        return known.study_direction
    probe = LoggedProbe(first, trainer_args)
    return probe.objective(
        space.metric,
        None,
        given_as=given_as,
        declare="add direction: maximize or minimize to the search space",
    ).study_direction


class LoggedProbe:
    """What a recipe's module logs, and with which Metric, in one training, one validation and
    (where the module and its data have a test step) one test batch, in a temporary folder,
    about a second. Names logged while fitting are in ``fitted``, those the test step adds in
    ``tested``.

    Not Lightning's ``fast_dev_run``: that makes the run one step long, so the module's
    schedule is built for one step and a warmup of 5 steps is refused although the real run is
    300 steps long. The probe keeps the recipe's own length (``max_epochs``, ``max_steps``,
    ``limit_train_batches``) and stops after the first batch instead, so the schedule is built
    and checked once against the length the trials will train (a warmup not shorter than that
    is one ConfigError here, before trial 0), and validation sees one batch."""

    def __init__(self, recipe: dict[str, Any], trainer_args: Sequence[str]) -> None:
        from lightning.pytorch.utilities.model_helpers import is_overridden

        trainer = recipe.get("trainer") or {}
        probe_args = [
            "--trainer.num_sanity_val_steps=0",
            "--trainer.limit_test_batches=1",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.min_epochs=null",
            "--trainer.min_steps=null",
        ]
        if trainer.get("limit_val_batches") != 0:  # 0 (no validation) is the recipe's to keep
            probe_args.append("--trainer.limit_val_batches=1")
        with tempfile.TemporaryDirectory() as tmp:
            path = write_recipe(recipe, Path(tmp) / "recipe.yaml")
            # Whatever the recipe's callbacks save (a LayerDiagnostics plot) stays in tmp.
            cli = build_trial_objects(
                path, *trainer_args, *probe_args, f"--trainer.default_root_dir={tmp}"
            )
            cli.trainer.callbacks.append(_StopAfterOneBatch())
            self.module = type(cli.model).__name__
            self.directions = logged_directions(cli.model)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            self.fitted = list(self.directions.seen)
            self.tested: list[str] = []
            data = cli.datamodule if cli.datamodule is not None else cli.model
            if is_overridden("test_step", cli.model) and is_overridden("test_dataloader", data):
                cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
                self.tested = [n for n in self.directions.seen if n not in self.fitted]

    def objective(
        self,
        metric: str,
        given: Any,
        *,
        given_as: str,
        declare: str,
        what: str = "the search space's metric",
        fix: str = "set metric: in the search space",
    ) -> Objective:
        """``metric``'s objective: ``given`` checked against the Metric logged under it, else
        that Metric's direction, else the standard table; one ConfigError otherwise."""
        if metric not in self.fitted:
            raise MetricNotLoggedError.naming(metric, self.module, self.fitted, what=what, fix=fix)
        found = resolve_objective(
            metric,
            given,
            logged=self.directions.seen[metric],
            given_as=given_as,
            logged_by=self.directions.describe(metric),
            required=False,
        )
        if found is None:
            raise DirectionError(f"{what} {self.directions.describe(metric)}: {declare}")
        return found


class _StopAfterOneBatch(Callback):
    """Ends the probe's fit after its first training batch; Lightning then still validates
    (a requested stop validates, as EarlyStopping's does) and runs the epoch-end hooks."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        trainer.should_stop = True


def _check_path(config: Namespace, path: str) -> None:
    node: Any = config
    done: list[str] = []
    for key in path.split("."):
        owner = None
        if (
            isinstance(node, Namespace)
            and "class_path" in node
            and key not in ("class_path", "init_args")
        ):
            owner = node["class_path"]
            node = node.get("init_args") or Namespace()
        if node is None or isinstance(node, dict):
            return  # a free-form mapping (optimizer_kwargs …): its keys are the plugin's to check
        if not isinstance(node, Namespace) or key not in node:
            where = ".".join(done) or "the recipe"
            known = list(node.keys()) if isinstance(node, Namespace) else []
            known = [k for k in known if "." not in k]
            hint = did_you_mean(key, known)
            raise ConfigError(
                f"search space: {path} does not exist: {where}"
                f"{f' ({owner})' if owner else ''} has no {key!r}"
                f"{'; ' + hint if hint else ''}"
            )
        node = node[key]
        done.append(key)


class MetricCheck(Callback):
    """Stops the study when a trial's first epoch did not log the space's metric.

    Checked when the second epoch starts (or the fit ends), not at the first validation: a
    module's epoch-end training metrics (``train_loss``) reach ``callback_metrics`` only after
    the callbacks' ``on_train_epoch_end``.
    """

    def __init__(self, metric: str, direction: str | None = None) -> None:
        self.metric = metric
        self.direction = direction  # the study's (maximize / minimize)
        self.checked = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.direction is not None:
            logged_directions(pl_module).when_logged(self.metric, self.direction_logged)

    def direction_logged(self, logged: Literal["min", "max"] | None, described: str) -> None:
        try:
            resolve_objective(
                self.metric,
                self.direction,
                logged=logged,
                logged_by=described,
                given_as="the study's direction",
                required=False,
            )
        except DirectionError as err:
            raise MetricDirectionError(f"{err} (set direction: in the search space)") from None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= 1:
            self._check(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.checked:
            return
        self.checked = True
        if self.metric not in trainer.callback_metrics:
            raise MetricNotLoggedError.naming(
                self.metric, type(pl_module).__name__, [str(k) for k in trainer.callback_metrics]
            )
