"""Stage 10: a stage's task under Accelerate, torch FSDP and DeepSpeed."""
