"""The plugin catalog: registries, value checks, optimizers and schedulers by name, param
groups and the public factory (``create_optimizer`` / ``create_scheduler``).

The lowest layer: it imports torch only, never Lightning or torchmetrics, and nothing above it.
Its public names are exported from ``lit_optim`` itself.
"""
