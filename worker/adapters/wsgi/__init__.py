"""The notify receiver: a plain WSGI application."""
