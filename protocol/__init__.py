"""Sans-IO implementation of the OVMS v2 protocol: welcome lines, scheme 0/1, framing, messages.

No sockets and no trio here: feed bytes in, get events out; hand messages in,
get bytes out (the h11 model).
"""

from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.framing import MAX_LINE_LENGTH, LineBuffer
from protocol.messages import (
    MULTILINE_COMMANDS,
    SERVER_COMMANDS,
    TPMS,
    CommandResponse,
    Doors,
    Firmware,
    HistoricalRecord,
    Location,
    Message,
    NewTPMS,
    Status,
    WheelSeries,
)
from protocol.session import (
    NEED_DATA,
    ClientSession,
    ProvisionAnswer,
    RefusedMessage,
    ServerSession,
    ServerWelcome,
    State,
)
from protocol.welcome import ClientType, ProvisionRequest, Scheme0Login, Scheme1Login, parse_welcome

__all__ = [
    "MAX_LINE_LENGTH",
    "MULTILINE_COMMANDS",
    "NEED_DATA",
    "SERVER_COMMANDS",
    "TPMS",
    "ClientSession",
    "ClientType",
    "CommandResponse",
    "Doors",
    "Firmware",
    "HistoricalRecord",
    "LineBuffer",
    "LocalProtocolError",
    "Location",
    "Message",
    "NewTPMS",
    "ProtocolError",
    "ProvisionAnswer",
    "ProvisionRequest",
    "RefusedMessage",
    "RemoteProtocolError",
    "Scheme0Login",
    "Scheme1Login",
    "ServerSession",
    "ServerWelcome",
    "State",
    "Status",
    "WheelSeries",
    "parse_welcome",
]
