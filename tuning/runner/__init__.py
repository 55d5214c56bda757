"""The study loop: the objective (recipe + trial -> Trainer.fit -> metric), workers, populations
of trials, and the signals that stop them."""
