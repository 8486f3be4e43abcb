"""Data usage accounting: connections count their bytes, the store keeps them per day.

Counting on the connection and handing totals over on the sweeper's tick keeps
per-message work on the hot path to two integer additions.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay.hubapi import Peer
from relay.store import Store


def flush_usage(peers: Iterable[Peer], store: Store) -> None:
    """Hand each peer's byte counts since the last flush to the store (car or app column)."""
    for peer in peers:
        rx, tx = peer.rx_bytes, peer.tx_bytes
        if not (rx or tx):
            continue
        peer.rx_bytes = peer.tx_bytes = 0
        if peer.is_car:
            store.add_usage(peer.vehicleid, car_rx=rx, car_tx=tx)
        else:
            store.add_usage(peer.vehicleid, app_rx=rx, app_tx=tx)
