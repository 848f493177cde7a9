"""Training: fine-tuning strategies, losses, loop, checkpoints."""
