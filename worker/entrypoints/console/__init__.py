"""The operator console: a Flask application served by `refund-worker console`."""
