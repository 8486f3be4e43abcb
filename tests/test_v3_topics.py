"""OVMS v3 topic scheme (protocol/ovms_v3/topics.py): parsing, injection checks, builders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.ovms_v3 import topics
from protocol.ovms_v3.topics import Kind, V3Topic, parse_topic


def test_metric_topic_has_the_dotted_name() -> None:
    assert parse_topic("ovms", "ovms/alice/DEMO/metric/v/b/soc") == V3Topic(
        "alice", "DEMO", Kind.METRIC, "v.b.soc")


def test_connected_metric() -> None:
    parsed = parse_topic("ovms", "ovms/alice/DEMO/metric/s/v3/connected")
    assert parsed is not None and parsed.name == topics.CONNECTED_METRIC


def test_notify_and_data() -> None:
    assert parse_topic("ovms", "ovms/a/V/notify/alert/charge/stopped") == V3Topic(
        "a", "V", Kind.NOTIFY, "charge.stopped", notify_type="alert")
    assert parse_topic("ovms", "ovms/a/V/notify/data/log/trip/17/-30") == V3Topic(
        "a", "V", Kind.DATA, "log.trip", notify_type="data", number=17, age=30)


def test_client_topics() -> None:
    assert parse_topic("ovms", "ovms/a/V/client/relay-1/response/42") == V3Topic(
        "a", "V", Kind.CLIENT_RESPONSE, client_id="relay-1", number=42)
    assert parse_topic("ovms", "ovms/a/V/client/app/active") == V3Topic(
        "a", "V", Kind.CLIENT_ACTIVE, client_id="app")


@pytest.mark.parametrize("topic", [
    "ovms/a/V/metric/v/+/soc", "ovms/a/V/metric/v/#", "ovms/+/V/metric/v", "ovms/a/V/metric",
    "ovms/a/V/metric/v//soc", "ovms/a/../metric/v", "ovms/a/V/metric/v.b/soc",
    "ovms/a/V/metric/v/b/s\x00c", "ovms/a/V/metric/v/b/s\u00f6c", "ovms/a\nb/V/metric/x",
    "other/a/V/metric/v", "ovms/a/V/notify/chat/x", "ovms/a/V/client/c/response/x",
    "ovms/a/V/notify/data/log/1/30", "ovms/a/V/metric/" + "x" * 65,
    "ovms/a/V/metric/" + "/".join(["x"] * 13), "ovms/a/V/metric/v/b/soc" + "/x" * 300,
])
def test_malformed_topics_are_none(topic: str) -> None:
    assert parse_topic("ovms", topic) is None


def test_builders_round_trip() -> None:
    t = topics.command_topic("ovms", "alice", "DEMO", "relay", 7)
    assert t == "ovms/alice/DEMO/client/relay/command/7"
    assert parse_topic("ovms", t) == V3Topic(
        "alice", "DEMO", Kind.CLIENT_COMMAND, client_id="relay", number=7)
    assert topics.active_topic("ovms", "alice", "DEMO", "relay") == (
        "ovms/alice/DEMO/client/relay/active")
    m = topics.metric_topic("ovms", "alice", "DEMO", "v.b.soc")
    assert parse_topic("ovms", m) == V3Topic("alice", "DEMO", Kind.METRIC, "v.b.soc")


@pytest.mark.parametrize("owner", ["a/b", "a+", "#", "", "..", "\u00e9", "a b"])
def test_builders_refuse_bad_segments(owner: str) -> None:
    with pytest.raises(ValueError):
        topics.active_topic("ovms", owner, "DEMO", "relay")


@given(st.text(max_size=300))
def test_parse_never_raises(topic: str) -> None:
    parse_topic("ovms", topic)


segment = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                exclude_characters="+#/"), min_size=1, max_size=64).filter(
    lambda s: s not in (".", ".."))
name_part = st.text(st.sampled_from("abcxyz019_-"), min_size=1, max_size=10)


@given(segment, segment, st.lists(name_part, min_size=1, max_size=12))
def test_metric_topics_round_trip(owner: str, vid: str, parts: list[str]) -> None:
    name = ".".join(parts)
    built = topics.metric_topic("ovms", owner, vid, name)
    assert parse_topic("ovms", built) == V3Topic(owner, vid, Kind.METRIC, name)


@given(segment, segment, segment, st.integers(min_value=0, max_value=999_999_999))
def test_client_topics_round_trip(owner: str, vid: str, client: str, n: int) -> None:
    parsed = parse_topic("ovms", topics.response_topic("ovms", owner, vid, client, n))
    assert parsed == V3Topic(owner, vid, Kind.CLIENT_RESPONSE, client_id=client, number=n)


@given(st.lists(st.text(max_size=20), min_size=1, max_size=10))
def test_parsed_segments_are_plain(parts: list[str]) -> None:
    parsed = parse_topic("ovms", "ovms/" + "/".join(parts))
    if parsed is not None:
        for text in (parsed.owner, parsed.vehicleid, parsed.name, parsed.client_id):
            assert text.isascii() and (text == "" or text.isprintable())
            assert not set(text) & set("+#/ ")


def test_subscriptions_and_acl_patterns() -> None:
    subs = topics.subscription("ovms")
    assert "ovms/+/+/metric/#" in subs and "ovms/+/+/client/+/response/+" in subs
    assert not any("command" in s or "active" in s for s in subs)
    assert topics.owner_topic("ovms", "alice") == "ovms/alice/#"
    assert topics.vehicle_topic("a/b", "alice", "V1") == "a/b/alice/V1/#"
    assert parse_topic("a/b", "a/b/alice/V1/metric/v/b/soc") is not None
    with pytest.raises(ValueError):
        topics.subscription("ovms/#")
    assert parse_topic("ovms/+", "ovms/+/a/V/metric/x") is None
