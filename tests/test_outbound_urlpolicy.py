"""Which user-supplied URLs the relay fetches (relay.outbound.urlpolicy), and their config."""

from __future__ import annotations

import ipaddress

import pytest

from relay.cli import build_parser, make_config
from relay.config import Config, ConfigError
from relay.outbound.urlpolicy import (
    Target,
    Unresolvable,
    UrlPolicy,
    UrlRefused,
    describe,
    is_public,
)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
    "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1",
    "64:ff9b::a00:1", "192.0.2.1", "2001:db8::1",
])
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", [
    "http://8.8.8.8/hook",  # plain http needs an allow prefix
    "https://127.0.0.1/", "https://[::1]:8443/", "https://169.254.169.254/",
    "https://localhost/", "ftp://8.8.8.8/", "https://user@8.8.8.8/", "https:///nohost",
    "https://8.8.8.8:99999/", "https://8.8.8.8/a b", "https://8.8.8.8/\r\nX: y", "",
])
async def test_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        await UrlPolicy().check(url)


async def test_public_literal_is_fetched_as_is() -> None:
    target = await UrlPolicy().check("https://8.8.8.8/hook?k=v")
    assert target == Target("https://8.8.8.8/hook?k=v", "8.8.8.8")
    assert target.request_options() == {}


async def test_names_are_pinned_to_the_checked_address() -> None:
    class FixedDns(UrlPolicy):
        async def _resolve(self, host: str, port: int) -> list[ipaddress.IPv4Address]:
            return [ipaddress.IPv4Address("93.184.215.14")]

    target = await FixedDns().check("https://hooks.example.org:8443/in?x=1")
    assert target.url == "https://93.184.215.14:8443/in?x=1"
    assert target.request_options() == {
        "headers": {"Host": "hooks.example.org:8443"},
        "extensions": {"sni_hostname": "hooks.example.org"},
    }


async def test_name_resolving_to_any_private_address_is_refused() -> None:
    class MixedDns(UrlPolicy):
        async def _resolve(self, host: str, port: int) -> list[ipaddress.IPv4Address]:
            return [ipaddress.IPv4Address("93.184.215.14"), ipaddress.IPv4Address("10.0.0.7")]

    with pytest.raises(UrlRefused, match="non-public"):
        await MixedDns().check("https://rebind.example.org/")


async def test_unresolvable_name() -> None:
    with pytest.raises(Unresolvable):
        await UrlPolicy().check("https://no-such-host.invalid/hook")


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:8080/", True),
    ("http://127.0.0.1:8080/hooks/a?b=c", True),
    ("http://127.0.0.1:8080", True),
    ("http://127.0.0.1:80801/", False),
    ("http://127.0.0.1:8080@evil.example/", False),
    ("https://127.0.0.1:8080/", False),
    ("http://127.0.0.2:8080/", False),
    ("http://127.0.0.1:9000/", False),
    ("http://localhost:8080/", False),
])
def test_operator_prefixes_compare_parsed_urls(url: str, allowed: bool) -> None:
    assert UrlPolicy(("http://127.0.0.1:8080/",)).operator_allowed(url) is allowed


def test_prefix_path_is_respected() -> None:
    policy = UrlPolicy(("http://10.0.0.5/ovms/",))
    assert policy.operator_allowed("http://10.0.0.5/ovms/car1")
    assert not policy.operator_allowed("http://10.0.0.5/admin")


def test_describe_hides_path_and_query() -> None:
    assert describe("https://hooks.example.org/secret-token?key=abc") == "https://hooks.example.org"


def test_webhook_allow_from_file_and_flags() -> None:
    assert Config().updated({"webhook_allow": ["http://127.0.0.1:8080/"]}).webhook_allow == [
        "http://127.0.0.1:8080/"]
    assert Config().updated({"webhook_allow": "http://a/"}).webhook_allow == ["http://a/"]
    with pytest.raises(ConfigError):
        Config().updated({"webhook_allow": [1]})
    args = build_parser().parse_args(["serve", "--webhook-allow", "http://127.0.0.1:8080/",
                                      "--webhook-allow", "http://[::1]:9/"])
    assert make_config(args).webhook_allow == ["http://127.0.0.1:8080/", "http://[::1]:9/"]
    assert make_config(build_parser().parse_args(["serve"])).webhook_allow == []
