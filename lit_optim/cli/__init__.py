"""The ``lit-optim`` command: a LightningCLI (``main``), ``list``, ``lr-find`` / ``batch-find``,
and the Trainer defaults it brings. The top layer of ``lit_optim``."""
