"""relay.v4.jsonparse: strict JSON with duplicate keys reported by JSON path."""

from __future__ import annotations

import pytest

from relay.v4.jsonparse import (
    ApiError,
    DuplicateKey,
    InvalidRequest,
    NotSupported,
    loads_strict,
    path_join,
)


def test_plain_document() -> None:
    assert loads_strict('{"a": [1, {"b": null}], "c": "x"}') == {"a": [1, {"b": None}], "c": "x"}
    assert loads_strict(b"[1, 2]") == [1, 2]
    assert loads_strict("3") == 3


def test_result_is_plain_dicts() -> None:
    value = loads_strict('{"a": {"b": [{"c": 1}]}}')
    assert type(value) is dict
    assert type(value["a"]) is dict
    assert type(value["a"]["b"][0]) is dict


def test_duplicate_at_top_level() -> None:
    with pytest.raises(DuplicateKey) as info:
        loads_strict('{"a": 1, "b": 2, "a": 3}')
    assert info.value.message == 'duplicate key "a" in $'
    assert info.value.key == "a"
    assert info.value.path == "$"


def test_duplicate_nested_in_array_names_the_path() -> None:
    body = '{"triggerParam": {"triggers": [{"name": "x"}, {"name": "a", "zone": {}, "name": "b"}]}}'
    with pytest.raises(DuplicateKey) as info:
        loads_strict(body)
    assert str(info.value) == 'duplicate key "name" in $.triggerParam.triggers[1]'


def test_duplicate_under_odd_key_is_quoted() -> None:
    with pytest.raises(DuplicateKey) as info:
        loads_strict('{"time.zone": {"x": 1, "x": 2}}')
    assert info.value.message == 'duplicate key "x" in $["time.zone"]'


def test_outermost_duplicate_reported_first() -> None:
    with pytest.raises(DuplicateKey) as info:
        loads_strict('{"a": {"b": 1, "b": 2}, "a": 0}')
    assert info.value.path == "$"


def test_first_duplicate_in_document_order() -> None:
    with pytest.raises(DuplicateKey) as info:
        loads_strict('[{"p": 1}, {"q": 1, "q": 2}, {"r": 1, "r": 2}]')
    assert info.value.path == "$[1]"


def test_duplicate_key_is_an_invalid_request_and_value_error() -> None:
    with pytest.raises(ValueError):
        loads_strict('{"a": 1, "a": 1}')
    assert issubclass(DuplicateKey, InvalidRequest)
    assert InvalidRequest("x").status == 400
    assert NotSupported("x").status == 501
    assert ApiError("boom").body() == {"code": 400, "message": "boom"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "body is empty: expected a JSON document"),
        ("  \n", "body is empty: expected a JSON document"),
        ('{"a": }', "body is not valid JSON: Expecting value at line 1 column 7"),
        ('{"a": 1} x', "body is not valid JSON: Extra data at line 1 column 10"),
        ('{"a": NaN}', "body is not valid JSON: NaN is not a JSON number"),
        ("[Infinity]", "body is not valid JSON: Infinity is not a JSON number"),
    ],
)
def test_invalid_json(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        loads_strict(text)
    assert info.value.message == message


def test_huge_numbers() -> None:
    with pytest.raises(InvalidRequest, match="body is not acceptable JSON: Exceeds the limit"):
        loads_strict("[" + "1" * 5000 + "]")
    # 1e400 is valid JSON; it parses to infinity, which callers range-check.
    assert loads_strict("[1e400]") == [float("inf")]


def test_bad_utf8() -> None:
    with pytest.raises(InvalidRequest, match=r"body is not UTF-8 \(byte 6\)"):
        loads_strict(b'{"a": \xff}')


def test_deep_nesting_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        loads_strict("[" * 100_000 + "]" * 100_000)


def test_nesting_just_under_the_limit_parses() -> None:
    depth = 500
    value = loads_strict('{"a":' * depth + "1" + "}" * depth)
    for _ in range(depth):
        value = value["a"]
    assert value == 1


def test_path_join() -> None:
    assert path_join("$", "a") == "$.a"
    assert path_join("$.a", 3) == "$.a[3]"
    assert path_join("$", "bool.exp") == '$["bool.exp"]'
    assert path_join("$", "é") == '$["\\u00e9"]'
