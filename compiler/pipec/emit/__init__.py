"""Stage 5, emit: Outputs -> generated/ on disk, atomically; `check` and `diff` compare the two."""
