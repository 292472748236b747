"""The notify anchor: a WSGI app that reads the body and answers `success`, nothing else.

Served by gunicorn with the notify-server's settings (gthread, one worker, eight
threads), it measures what HTTP, gunicorn and the load generator cost on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")])
    return [b"success"]
