"""Callback payloads for inline buttons: short, validated, never executed.

Telegram echoes `callback_data` back verbatim, so whatever arrives is untrusted input: it is parsed with a
strict pattern against the set of registered actions, never evaluated or unpickled.
"""

from __future__ import annotations

import re

MAX_BYTES = 64  # Telegram's limit for callback_data
_SEP = "|"
_ARG = re.compile(r"^[A-Za-z0-9_.\-:]{0,48}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_]{0,23}$")

_registered: set[str] = set()


class BadCallback(ValueError):
    """The payload is not one this bot could have produced."""


def register(*actions: str) -> None:
    for action in actions:
        if not _ACTION.match(action):
            raise ValueError(f"invalid callback action name {action!r}")
        _registered.add(action)


def encode(action: str, *args: str | int) -> str:
    if action not in _registered:
        raise ValueError(f"callback action {action!r} is not registered")
    parts = [action, *(str(a) for a in args)]
    for part in parts[1:]:
        if not _ARG.match(part):
            raise ValueError(f"callback argument {part!r} has characters outside the safe set")
    data = _SEP.join(parts)
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data {data!r} exceeds {MAX_BYTES} bytes")
    return data


def decode(data: str | None) -> tuple[str, tuple[str, ...]]:
    if not data or len(data.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise BadCallback("empty or oversized")
    action, *args = data.split(_SEP)
    if action not in _registered or not all(_ARG.match(a) for a in args):
        raise BadCallback("unknown action or malformed argument")
    return action, tuple(args)
