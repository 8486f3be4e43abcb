"""One v3 vehicle's latest metric values, and the v2 messages they make.

The broker side feeds every ``metric/...`` message it receives into ``apply``
(a module sends its changed metrics in a burst), collects the changed message
codes, and then asks ``messages`` for those codes once: one ``S`` per burst, not
one per metric. ``s.v3.connected`` is the module's online flag (and its last
will, ``no``); it changes ``online``, not a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from protocol.messages import Message
from protocol.ovms_v3 import metrics
from protocol.ovms_v3.format import boolean, check, message_for
from protocol.ovms_v3.topics import CONNECTED_METRIC

# The longest value of a mapped metric is a TPMS vector or a hardware description,
# well under 200 bytes; 1 KB leaves room and keeps a retained flood cheap.
MAX_PAYLOAD: Final = 1024


@attrs.frozen
class Applied:
    """What one ``apply`` did.

    ``codes``: the v2 message codes whose content changed. ``online``: the new
    online flag when this metric changed it, else None. ``rejected``: why the
    payload was refused (for a rate-limited log line), else None. An unknown
    metric is neither: it is kept nowhere and changes nothing.
    """

    codes: frozenset[str] = frozenset()
    online: bool | None = None
    rejected: str | None = None


UNCHANGED: Final = Applied()


@attrs.define
class VehicleState:
    """Latest values of the mapped metrics of one vehicle. ``units`` is the distance
    unit of the messages (``K`` km or ``M`` miles, the ``S`` units field)."""

    units: str = "K"
    online: bool = False
    _values: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.units not in ("K", "M"):
            raise ValueError("units must be 'K' or 'M'")

    def apply(self, metric: str, payload: bytes) -> Applied:
        """Take one metric's new payload (an empty one clears it). Never raises."""
        kind = metrics.KINDS.get(metric)
        if kind is None and metric != CONNECTED_METRIC:
            return UNCHANGED
        if len(payload) > MAX_PAYLOAD:
            return Applied(rejected=f"{metric}: payload of {len(payload)} bytes is over "
                                    f"{MAX_PAYLOAD}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Applied(rejected=f"{metric}: payload is not UTF-8")
        if kind is None:
            return self._connected(text)
        if not text:
            if self._values.pop(metric, None) is None:
                return UNCHANGED
            return Applied(codes=metrics.codes_for(metric))
        try:
            check(kind, text)
        except ValueError as error:
            return Applied(rejected=f"{metric}: {error}")
        if self._values.get(metric) == text:
            return UNCHANGED
        self._values[metric] = text
        return Applied(codes=metrics.codes_for(metric))

    def _connected(self, text: str) -> Applied:
        try:
            online = boolean(text) if text else False
        except ValueError as error:
            return Applied(rejected=f"{CONNECTED_METRIC}: {error}")
        if online == self.online:
            return UNCHANGED
        self.online = online
        return Applied(online=online)

    def value(self, metric: str) -> str | None:
        """The current text of a mapped metric, or None."""
        return self._values.get(metric)

    def codes(self) -> frozenset[str]:
        """The codes there is something to send for (an app's login)."""
        return frozenset(c for m in self._values for c in metrics.codes_for(m))

    def messages(self, codes: Iterable[str]) -> list[Message]:
        """The v2 messages of ``codes`` from the current values, in code order;
        codes with no value at all, and codes that are not mapped, are left out."""
        out = []
        for code in sorted(set(codes) & set(metrics.CODES)):
            msg = message_for(code, self._values, self.units)
            if msg is not None:
                out.append(msg)
        return out


__all__ = ["MAX_PAYLOAD", "UNCHANGED", "Applied", "VehicleState"]
