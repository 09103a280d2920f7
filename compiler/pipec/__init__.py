"""pipec: a compiler for delivery pipelines (pipeline.yaml -> CloudFormation, GitHub Actions, runbooks)."""

__version__ = "0.1.0"
