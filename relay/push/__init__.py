"""Push notification delivery: a car's ``P`` and the vehicle authentication alerts,
sent to each push subscription of the vehicle (PROTOCOL.md section 7, docs/push.md).

``dispatcher`` owns the queue, the worker tasks, retries and persistence; one module
per delivery type (``webhook``, ``ntfy``, ``expo``, ``fcm``, ``apns``, ``mail``) turns a
pending notification into one request and classifies the answer; ``ssrf`` decides
which user-supplied URLs may be fetched.
"""

from relay.push.dispatcher import PushDispatcher

__all__ = ["PushDispatcher"]
