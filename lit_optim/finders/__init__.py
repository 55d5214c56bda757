"""Finders for any LightningModule: the learning-rate range test and the batch-size search."""
