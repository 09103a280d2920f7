"""The command line: typer commands that parse arguments, call one function and map errors to exit codes."""
