"""The REST API (PROTOCOL.md section 8): HTTP/1.1 on trio + h11, over the relay's hub and store."""

from relay.http.api import HttpApi, api_for
from relay.http.server import serve_http

__all__ = ["HttpApi", "api_for", "serve_http"]
