"""One v3 vehicle's latest metric values, and the v2 messages they make.

The broker side feeds every ``metric/...`` message it receives into ``apply``
(a burst of them, for a module sends its changed metrics together), collects the
changed message codes, and then asks ``messages`` for those codes once: one ``S``
per burst, not one per metric.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from protocol.messages import Message
from protocol.ovms_v3 import metrics
from protocol.ovms_v3.format import field_text, message_for
from protocol.ovms_v3.topics import CONNECTED_METRIC

# The longest metric value a module sends is a few hundred bytes (a vector metric
# of per-cell voltages, ``v.b.c.voltage``: 96 cells * 6 chars). Anything longer is
# not a metric value.
MAX_PAYLOAD: Final = 2048

_TRUE: Final = frozenset({"yes", "true", "1", "on"})
_FALSE: Final = frozenset({"no", "false", "0", "off", ""})


@attrs.frozen
class Applied:
    """What one ``apply`` did.

    ``codes``: the v2 message codes whose content changed. ``online``: the new
    online flag when this metric changed it (``s.v3.connected``), else None.
    ``rejected``: why the payload was refused (for a rate-limited log line), else
    None. An unknown metric is neither: it is stored nowhere and changes nothing.
    """

    codes: frozenset[str] = frozenset()
    online: bool | None = None
    rejected: str | None = None


UNCHANGED: Final = Applied()


@attrs.define
class VehicleState:
    """Latest values of the mapped metrics of one vehicle; ``units`` is the ``S``
    message's distance unit (``K`` km or ``M`` miles) the apps are told."""

    units: str = "K"
    online: bool = False
    _values: dict[str, str] = attrs.field(factory=dict)

    def apply(self, metric: str, payload: bytes) -> Applied:
        """Take one metric's new payload. Never raises."""
        if len(payload) > MAX_PAYLOAD:
            return Applied(rejected=f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Applied(rejected="payload is not UTF-8")
        if metric == CONNECTED_METRIC:
            return self._connected(text)
        codes = metrics.codes_for(metric)
        if not codes:
            return UNCHANGED
        if self._values.get(metric) == text:
            return UNCHANGED
        for source in metrics.MAPPING:
            if source.metric == metric:
                try:
                    field_text(source, text, self.units)
                except ValueError as error:
                    return Applied(rejected=f"{metric}: {error}")
        self._values[metric] = text
        return Applied(codes=codes)

    def _connected(self, text: str) -> Applied:
        value = text.strip().lower()
        if value in _TRUE:
            online = True
        elif value in _FALSE:
            online = False
        else:
            return Applied(rejected=f"{CONNECTED_METRIC} {text[:24]!r} is not a boolean")
        if online == self.online:
            return UNCHANGED
        self.online = online
        return Applied(online=online)

    def value(self, metric: str) -> str | None:
        return self._values.get(metric)

    def codes(self) -> frozenset[str]:
        """The codes there is something to send for (an app's login)."""
        return frozenset(c for m in self._values for c in metrics.codes_for(m))

    def messages(self, codes: Iterable[str]) -> list[Message]:
        """The v2 messages of ``codes`` from the current values, in code order;
        codes with no value at all are left out."""
        out = []
        for code in sorted(set(codes)):
            msg = message_for(code, self._values, self.units)
            if msg is not None:
                out.append(msg)
        return out


__all__ = ["MAX_PAYLOAD", "UNCHANGED", "Applied", "VehicleState"]
