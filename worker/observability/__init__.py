"""Logs (structlog, redaction, buffered writer) and metrics (prometheus-client)."""
