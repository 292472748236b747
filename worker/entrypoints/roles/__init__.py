"""Process entry points, one module per `refund-worker` subcommand."""
