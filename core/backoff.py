"""How long to wait before retry `attempt`: the one formula behind every retry wait in the project.

The wait for attempt n (1 = the wait after the first failure) is `base_s · 2^(n-1)`, at most `cap_s`, then
jittered, then raised to the server's `retry_after_s` when one was given (a 429's Retry-After is a floor: asking
earlier only earns another 429). Each caller keeps its own numbers and says why beside them.

Written here rather than taken from a library: tenacity's wait functions would fit but tenacity is not a
dependency, and the retry helper that is installed (urllib3's `Retry.get_backoff_time`) has neither full nor
equal jitter, nor injectable randomness, nor a way to be asked about one attempt without its retry state.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from typing import Literal

__all__ = ["Jitter", "backoff_s"]

Jitter = Literal["none", "full", "equal", "proportional"]
"""How the capped wait `c` is spread, with `r` drawn from [0, 1):
none: `c`. full: `r·c`, anywhere in [0, c) (AWS "full jitter"). equal: `c/2 + r·c/2`, in [c/2, c): half fixed,
half random. proportional: `c·(1 - spread + 2·spread·r)`, within ±spread of `c` (0.2 = ±20 %); this one may go
above the cap by that fraction."""

_MAX_DOUBLINGS = 1023  # 2.0 ** 1024 overflows; long before that any finite base has passed any useful cap


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float = math.inf,
    jitter: Jitter = "none",
    spread: float = 0.0,
    retry_after_s: float | None = None,
    cap_retry_after: bool = False,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait before retry `attempt` (>= 1).

    `base_s` is the first wait, doubled for each further attempt up to `cap_s`; `jitter` and `spread` spread it
    (see `Jitter`) with `random()`, a float in [0, 1) (inject a constant for deterministic tests). A given
    `retry_after_s` is the least the result can be; with `cap_retry_after` the cap bounds the result as well,
    server's wait included, for a caller that would rather ask again early than wait that long.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread is a fraction in [0, 1], got {spread}")
    capped = min(cap_s, base_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    if jitter == "none":
        wait = capped
    elif jitter == "full":
        wait = random() * capped
    elif jitter == "equal":
        wait = capped / 2 + random() * capped / 2
    elif jitter == "proportional":
        wait = capped * (1.0 - spread + 2.0 * spread * random())
    else:
        raise ValueError(f"unknown jitter {jitter!r}")
    if retry_after_s is not None:
        wait = max(wait, retry_after_s)
    if cap_retry_after:
        wait = min(wait, cap_s)
    return wait
