"""The optimization lab: convex problems with known optima, to compare optimizers exactly."""
