"""Callback payloads are untrusted: only registered actions with safe arguments decode."""

import pytest

from kernel import callbacks
from kernel.callbacks import BadCallback, decode, encode

callbacks.register("t_demo")


def test_round_trip() -> None:
    data = encode("t_demo", "step", 3)
    assert decode(data) == ("t_demo", ("step", "3"))


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "x" * 65,
        "t_unknown|1",
        "t_demo|<script>",
        "t_demo|a b",
        "__import__('os')",
        "t_demo|" + "é" * 30,
    ],
)
def test_forged_payloads_are_refused(data: str | None) -> None:
    with pytest.raises(BadCallback):
        decode(data)


def test_encode_refuses_unsafe_or_long() -> None:
    with pytest.raises(ValueError):
        encode("t_demo", "a|b")
    with pytest.raises(ValueError):
        encode("t_demo", "a" * 48, "b" * 20)
    with pytest.raises(ValueError):
        encode("not_registered")
