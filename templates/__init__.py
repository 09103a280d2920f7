"""pipec's Jinja2 templates (shipped inside the package as pipec.templates)."""
