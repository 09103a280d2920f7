"""Stage 6, aws: deploy, status, history and rollback with boto3, against a Plan."""
