"""Strict JSON for request bodies, and the errors every v4 module raises.

``json.loads`` silently keeps the last of two equal keys. For a monitor that
hides a real mistake: two triggers squeezed into one object
(``{"name": "a", "zone": ..., "name": "b", "data": ...}``) would quietly become
one trigger. So request bodies are parsed with duplicate-key detection and the
error names the key and where it is, as a JSON path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# Bodies are parsed in one go; the HTTP layer bounds their size. Nesting is
# bounded by the C scanner's recursion guard (RecursionError, caught below).


class ApiError(ValueError):
    """An error the HTTP layer turns into ``{"code": status, "message": message}``."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.status, "message": self.message}


class InvalidRequest(ApiError):
    """The client sent something wrong: HTTP 400, with a message saying exactly what."""

    status = 400


class NotSupported(ApiError):
    """A well-formed request for something this server cannot do: HTTP 501."""

    status = 501


class DuplicateKey(InvalidRequest):
    """An object repeats a key. ``path`` is the JSON path of that object."""

    def __init__(self, key: str, path: str) -> None:
        super().__init__(f"duplicate key {json.dumps(key)} in {path}")
        self.key = key
        self.path = path


class _Obj(dict[str, Any]):
    """A parsed object that remembers which keys it saw more than once."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in self.duplicates:
                self.duplicates.append(key)
            seen.add(key)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python accepts them by default.
    raise InvalidRequest(f"body is not valid JSON: {name} is not a JSON number")


def path_join(path: str, key: str | int) -> str:
    """The JSON path of a member: ``$.a.b``, ``$.a[0]``, ``$["bool.exp"]`` for odd keys."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _walk(root: Any) -> Iterator[tuple[str, Any]]:
    """(path, value) for every object and array, parents first, in document order.

    Iterative: the scanner accepts nesting close to the recursion limit, so a
    recursive walk could overflow where parsing did not.
    """
    stack: list[tuple[str, Any]] = [("$", root)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            yield path, value
            stack.extend(reversed([(path_join(path, k), v) for k, v in value.items()]))
        elif isinstance(value, list):
            yield path, value
            stack.extend(reversed([(path_join(path, i), v) for i, v in enumerate(value)]))


def _plain(value: Any) -> Any:
    """Replace the ``_Obj`` markers by plain dicts (iteratively, for the same reason)."""
    if not isinstance(value, dict | list):
        return value
    root: Any = dict(value) if isinstance(value, dict) else list(value)
    stack: list[Any] = [root]
    while stack:
        container = stack.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, child in list(items):
            if isinstance(child, dict):
                container[key] = dict(child)
                stack.append(container[key])
            elif isinstance(child, list):
                container[key] = list(child)
                stack.append(container[key])
    return root


def loads_strict(text: str | bytes) -> Any:
    """Parse a JSON document, rejecting duplicate keys, NaN/Infinity and bad encoding.

    Raises ``DuplicateKey`` (the first duplicate in document order, outermost
    first) or ``InvalidRequest``; never anything else.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InvalidRequest("body is empty: expected a JSON document")
    try:
        value = json.loads(text, object_pairs_hook=_Obj, parse_constant=_reject_constant)
    except InvalidRequest:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidRequest("body is not acceptable JSON: nested too deeply") from None
    except ValueError as exc:
        # int() refuses integers of more than 4300 digits (CVE-2020-10735 guard).
        raise InvalidRequest(f"body is not acceptable JSON: {exc}") from None
    for path, node in _walk(value):
        if isinstance(node, _Obj) and node.duplicates:
            raise DuplicateKey(node.duplicates[0], path)
    return _plain(value)
