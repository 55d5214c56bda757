"""Callbacks that do nothing per batch are not called per batch.

Lightning calls every per-batch hook of every callback (six per training step, two per
validation step), each inside a profiler context, whether the callback overrides it or not.
For the four callbacks ``lit-optim fit`` adds that act only at setup or at an epoch's end, that
was 2-3% of a small network's step (bench/README.md, costs).

Lightning's dispatcher skips a hook that is not callable (``if callable(fn)`` in
``lightning.pytorch.trainer.call._call_callback_hooks``). That is not a documented promise, so
this module is the one place that relies on it, and ``tests/callbacks/test_step_dispatch.py``
pins it: a hook set to None is not called, an overridden one is, and a fit runs through.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

__all__ = ["BATCH_HOOKS", "skip_unused_batch_hooks"]

# Every hook Lightning calls once per batch (training, validation, test, predict).
BATCH_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)


def skip_unused_batch_hooks(callback: Callback) -> None:
    """Hides from Lightning's dispatch each per-batch hook that ``callback``'s class (or a
    subclass of it) does not override; call it at the end of ``__init__``. An overridden hook,
    a subclass's included, is dispatched as before."""
    for name in BATCH_HOOKS:
        if getattr(type(callback), name) is getattr(Callback, name):
            setattr(callback, name, None)
