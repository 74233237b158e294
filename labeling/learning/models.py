"""Training runs and model versions arrive with the active-learning loop (issue 5)."""
