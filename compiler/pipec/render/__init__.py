"""Stage 4, render: Plan -> Outputs (path, text) through the Jinja2 templates, parsed back and guarded."""
