"""The console script, its subcommands (one module per role) and per-process resources."""
