"""Stage 2, validate: Document -> Spec (the models, the semantic rules, schedules, AWS facts, the JSON Schema)."""
