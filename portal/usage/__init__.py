"""Usage: cost by model, daily usage, and tables by key and by model."""
