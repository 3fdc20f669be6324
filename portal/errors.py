"""Portal errors by kind, counted per local day for the staff dashboard (store/models_handover.py PortalErrorCount).

The lookups' callers count what they catch (actions/dossier.py for a citizen's lookup, portal/poller.py for a
followed dossier), once per lookup that got no usable answer; "no such dossier" and "wrong phone digits" are the
portal's answers, not its errors, and are not counted. The kind is read from the exception the client raises and
what caused it (portal/client.py), so a change there shows in tests/unit/actions/test_dossier.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from portal.client import DossierNotFound, PortalError, PortalUnavailable, VerificationFailed
from store.models_handover import PortalErrorCount

TIMEOUT = "timeout"  # no answer within the read timeout or the lookup's deadline
CONNECTION = "connection"  # the connection failed: refused, reset, a protocol error
SERVER_ERROR = "server_error"  # HTTP 5xx, still failing after the retries
RATE_LIMITED = "rate_limited"  # HTTP 429, still refused after the retries
AUTH = "auth"  # the token request refused (client credentials), or a fresh token rejected
CIRCUIT_OPEN = "circuit_open"  # not asked at all: the breaker (portal/breaker.py) was open after failures
BAD_RESPONSE = "bad_response"  # an answer the client cannot use: a malformed body, another dossier, another 4xx
OTHER = "other"  # unavailable for a reason this module does not know (a new one in the client)
KINDS = (TIMEOUT, CONNECTION, SERVER_ERROR, RATE_LIMITED, AUTH, CIRCUIT_OPEN, BAD_RESPONSE, OTHER)

# One statement, the same SQL on SQLite and PostgreSQL, as actions/stats.py counts messages: atomic, so concurrent
# lookups and bot replicas never lose a count.
_ERROR_UPSERT = text(
    "INSERT INTO portal_error_counts (day, kind, errors) VALUES (:day, :kind, 1) "
    "ON CONFLICT (day, kind) DO UPDATE SET errors = portal_error_counts.errors + 1"
).bindparams(bindparam("day", type_=PortalErrorCount.__table__.c.day.type))


def error_kind(exc: PortalError) -> str | None:
    """The kind of portal error `exc` is, or None when it is an answer (DossierNotFound, VerificationFailed)."""
    if isinstance(exc, (DossierNotFound, VerificationFailed)):
        return None
    message = str(exc).lower()
    if "breaker" in message:
        return CIRCUIT_OPEN
    if "malformed" in message:  # "malformed token response" is no refusal
        return BAD_RESPONSE
    if "token" in message:  # "the portal rejected a fresh token"
        return AUTH
    for cause in _causes(exc):
        if isinstance(cause, httpx.TimeoutException):
            return TIMEOUT
        if isinstance(cause, httpx.HTTPStatusError):
            status = cause.response.status_code
            if status == httpx.codes.TOO_MANY_REQUESTS:
                return RATE_LIMITED
            if status >= 500:
                return SERVER_ERROR
            # The client's one POST is its token request: any refusal of it is a credentials problem.
            if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN) or cause.request.method == "POST":
                return AUTH
            return BAD_RESPONSE
        if isinstance(cause, httpx.TransportError):
            return CONNECTION
    if isinstance(exc, PortalUnavailable):  # a reason without an HTTP cause, e.g. the deadline ran out
        if message in ("timeout", "deadline"):
            return TIMEOUT
        if message == "429":
            return RATE_LIMITED
        if message.isdigit() and message.startswith("5"):
            return SERVER_ERROR
        return OTHER
    return BAD_RESPONSE


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions `exc` was raised from (`raise ... from`), nearest first: never the implicit context, which
    may be an unrelated error handled just before (a refused dossier key, read again without it)."""
    seen: set[int] = set()
    cause = exc.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__


async def count_error(session: AsyncSession, day: dt.date, exc: PortalError) -> str | None:
    """Count `exc` for `day` (the local date) under its kind, in the caller's transaction; the kind, or None when
    `exc` is an answer and nothing was counted."""
    kind = error_kind(exc)
    if kind is not None:
        await session.execute(_ERROR_UPSERT, {"day": day, "kind": kind})
    return kind
