"""ovms-relay: the trio server (listeners, hub, store, HTTP API)."""

__version__ = "0.1.0"
