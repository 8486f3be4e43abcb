"""Push notification delivery: a car's ``P`` and the vehicle authentication alerts,
sent to each push subscription of the vehicle (PROTOCOL.md section 7, docs/push.md).

``dispatcher`` owns intake, the retry policy and persistence, and runs its deliveries
on ``relay.outbound`` (queue, workers, retry heap, HTTP client, URL policy); one
module per delivery type (``webhook``, ``ntfy``, ``expo``, ``fcm``, ``apns``, ``mail``)
turns a pending notification into one request and classifies the answer.
"""

from relay.push.dispatcher import PushDispatcher

__all__ = ["PushDispatcher"]
