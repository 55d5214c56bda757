"""What a trial is made of: the search space, the recipe it fills in and the checks before
trial 0."""
