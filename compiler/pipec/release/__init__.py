"""Releases from git: tags, commit messages and files at a ref (`pipec version`, `pipec diff --against`)."""
