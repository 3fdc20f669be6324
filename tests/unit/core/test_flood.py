"""Flood control: the 21st message in a minute is refused, the user is told once, the window slides."""

from core.flood import FloodGuard


def test_refuses_over_limit_and_warns_once() -> None:
    guard = FloodGuard(per_minute=20)
    verdicts = [guard.check(1, now=float(i)) for i in range(23)]
    assert verdicts[:20] == ["ok"] * 20
    assert verdicts[20:] == ["warn", "drop", "drop"]
    assert guard.check(2, now=22.0) == "ok"  # another user is not affected
    assert guard.check(1, now=61.5) == "ok"  # the oldest messages left the window
