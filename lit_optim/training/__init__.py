"""Training: the networks by name, the example task (``ClassificationTask``), its metrics and
checkpoint I/O. Built on the catalog, ``lit_optim.data`` and ``lit_optim.callbacks``; the
finders, the population and the CLI build on it."""
