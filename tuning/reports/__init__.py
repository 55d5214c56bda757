"""What a study leaves: reports of one study and fair comparisons between optimizers."""
