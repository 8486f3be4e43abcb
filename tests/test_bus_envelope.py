"""Bus envelopes and subject names, without a bus."""

from __future__ import annotations

import msgpack
import pytest

from protocol import Message
from relay.bus import envelope as env
from relay.bus.subjects import Subjects, token

SAMPLES: list[env.Envelope] = [
    env.Relay("a", "V", (Message("S", "1,2"), Message("T", "0"))),
    env.ToCar("b", "V", Message("E", "Mx")),
    env.Command("b", "V", 7, 20, Message("C", "20,1234")),
    env.Answer(7, Message("c", "20,0")),
    env.Answer(7, None),
    env.Counts("b", 123, "V", 2, 1, 0),
    env.CarOnline("a", 5, "V", 1700000000.5),
    env.CarOffline("a", 5, "V"),
    env.CarList("a", 5, (("V1", 1.0), ("V2", 2.5))),
    env.Beat("a", 5, hello=True),
    env.SyncRequest("a", 5),
    env.GroupData("a", "fleet", (("V1", "x,y"),), 3),
    env.GroupQuery("b", "fleet", 3),
    env.Notice("a", "accounts.vehicle", ("V", "vehicle deleted")),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_every_envelope_round_trips(sample: env.Envelope) -> None:
    assert env.unpack(env.pack(sample)) == sample


def test_relay_fast_path_packs_the_same() -> None:
    msgs = (Message("S", "1"), Message("D", "2"))
    assert env.pack_relay("a", "V", msgs) == env.pack(env.Relay("a", "V", msgs))


@pytest.mark.parametrize("raw", [
    b"\xc1", msgpack.packb("text"), msgpack.packb([99, "x"]), msgpack.packb([0, "a"]),
    msgpack.packb([1, "a", "V", ["E"]]), msgpack.packb([5, "a", "x", "V", 1, 0, 0]),
    msgpack.packb([6, "a", 1, "V", True]),
])
def test_what_is_not_an_envelope_is_refused(raw: bytes) -> None:
    with pytest.raises(env.EnvelopeError):
        env.unpack(raw)


def test_subject_tokens() -> None:
    assert token("DEMO-1_x") == "DEMO-1_x"
    assert token("a.b") != token("a_b")
    encoded = token("my car *>")
    assert encoded.startswith("=") and all(c not in encoded for c in ".*> ")
    assert Subjects("t1").inbox("node a") == f"t1.n.{token('node a')}"
    with pytest.raises(ValueError):
        Subjects("bad prefix")
