"""The `colorize` command line (installed as the `colorize_cli` package)."""
