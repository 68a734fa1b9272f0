"""Dataset building, LoRA training, merging and promotion of checkpoints."""
