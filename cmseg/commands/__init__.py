"""Implementations of the CLI subcommands, one module per command (imported lazily)."""
