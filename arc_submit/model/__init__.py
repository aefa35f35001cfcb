"""The model wing: resolving a model name or folder offline, loading it, LoRA training (shared by
test-time fine-tuning), learning-rate schedules, and merging an adapter into the weights."""
