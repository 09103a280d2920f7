"""Stage 1, load: pipeline.yaml text -> Document (plain data plus the position of every key and value)."""
