"""HTTP client for the provincial portal: OAuth2 client credentials, retries within a deadline, a breaker."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx
import structlog
from pydantic import ValidationError

from core.backoff import backoff_s
from portal.breaker import CircuitBreaker
from portal.models import Dossier, TokenResponse

log = structlog.get_logger(__name__)


class PortalError(Exception):
    """The portal answered something this client cannot use (malformed body, refused credentials, ...)."""


class DossierNotFound(PortalError):
    """The portal does not know this dossier code."""

    def __init__(self, code: str) -> None:
        super().__init__("dossier not found")
        self.code = code


class VerificationFailed(PortalError):
    """The portal refused the second factor (or the dossier key) sent for this dossier (403)."""

    def __init__(self, code: str) -> None:
        super().__init__("verification failed")
        self.code = code


# The second factor and the key travel in headers, not in the URL, so no access log or proxy records them.
PHONE_HEADER = "X-Applicant-Phone-Last4"
KEY_HEADER = "X-Dossier-Key"


class PortalUnavailable(PortalError):
    """The portal did not answer in time, keeps failing, or the breaker is open."""


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Unauthorized(Exception):
    """The portal refused the access token (expired or revoked)."""

    def __init__(self, token: str) -> None:
        super().__init__("token rejected")
        self.token = token


def code_ref(code: str) -> str:
    """A short, stable reference to a dossier code for logs, so logs do not index citizens' dossiers."""
    return hashlib.sha256(code.encode()).hexdigest()[:10]


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


class PortalClient:
    """Looks dossiers up on the portal. One instance (one connection pool) for the application's lifetime."""

    def __init__(
        self,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = 3,
        deadline_s: float = 8.0,
        breaker: CircuitBreaker | None = None,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 2.0,
        token_margin_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1 or deadline_s <= 0:
            raise ValueError("max_attempts must be >= 1 and deadline_s > 0")
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.token_margin_s = token_margin_s
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        # Called with the status of every response the portal sends (the metrics count them); an observer must
        # not raise or block.
        self.observers: list[Callable[[int], None]] = []
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"Accept": "application/json"},
            transport=transport,
            event_hooks={"response": [self._observe]},
        )
        self._token: str | None = None
        self._token_valid_until = 0.0
        self._token_lock = asyncio.Lock()

    async def _observe(self, response: httpx.Response) -> None:
        for observe in self.observers:
            observe(response.status_code)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_dossier(self, code: str, *, phone_last4: str | None = None, key: str | None = None) -> Dossier:
        """The dossier with this (normalised) code: its public view, or the full view with the last 4 digits of
        the applicant's phone number (`phone_last4`) or a dossier key the portal issued with an earlier full view.

        Raises DossierNotFound (404), VerificationFailed (403: wrong digits or key), PortalUnavailable (timeouts,
        connection errors, 5xx or 429 until the attempts or the deadline run out, or the breaker is open) or
        PortalError (anything else unusable).
        """
        ref = code_ref(code)
        deadline = self._clock() + self.deadline_s
        path = f"/dossiers/{quote(code, safe='')}"
        factor: dict[str, str] = {}
        if phone_last4 is not None:
            factor[PHONE_HEADER] = phone_last4
        elif key is not None:
            factor[KEY_HEADER] = key
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            if not self.breaker.allow():
                log.debug("portal_breaker_open", dossier=ref, retry_in_s=round(self.breaker.retry_in(), 1))
                raise PortalUnavailable("circuit breaker is open")
            try:
                response = await self._attempt(code, path, deadline, factor)
            except _Retryable as exc:
                self.breaker.failure()
                # Full jitter (a random wait up to the exponential cap) keeps many clients from retrying in step.
                delay = backoff_s(
                    attempt,
                    base_s=self.backoff_base_s,
                    cap_s=self.backoff_max_s,
                    jitter="full",
                    retry_after_s=exc.retry_after,
                    random=self._jitter,
                )
                remaining = deadline - self._clock()
                if attempt >= self.max_attempts or delay >= remaining:
                    log.warning("portal_unavailable", dossier=ref, reason=exc.reason, attempts=attempt)
                    raise PortalUnavailable(exc.reason) from exc
                log.info("portal_retry", dossier=ref, reason=exc.reason, attempt=attempt, delay_s=round(delay, 3))
                await self._sleep(delay)
                continue
            except _Unauthorized as exc:
                self.breaker.success()  # the portal answered
                self._forget_token(exc.token)
                if refreshed:
                    log.error("portal_unauthorized_after_refresh", dossier=ref)
                    raise PortalError("the portal rejected a fresh token") from None
                # The token expired or was revoked early: fetch a new one and try once more.
                log.info("portal_token_rejected", dossier=ref)
                refreshed = True
                attempt -= 1
                continue
            except PortalError:
                self.breaker.success()  # the portal answered; the problem is not its availability
                raise
            except BaseException:
                self.breaker.abandon()
                raise
            self.breaker.success()
            return self._parse(response, code, ref)

    def _timeout(self, deadline: float) -> httpx.Timeout:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Retryable("deadline")
        return httpx.Timeout(
            min(self.read_timeout, remaining),
            connect=min(self.connect_timeout, remaining),
        )

    async def _attempt(self, code: str, path: str, deadline: float, factor: dict[str, str]) -> httpx.Response:
        """One GET with a valid token: the 2xx response, or an exception saying what to do next."""
        try:
            token = await self._bearer(deadline)
            response = await self._http.get(
                path, headers={"Authorization": f"Bearer {token}", **factor}, timeout=self._timeout(deadline)
            )
            response.raise_for_status()
        except httpx.TimeoutException as exc:
            raise _Retryable("timeout") from exc
        except httpx.TransportError as exc:
            raise _Retryable(type(exc).__name__) from exc
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == httpx.codes.NOT_FOUND:
                raise DossierNotFound(code) from None
            if exc.response.status_code == httpx.codes.FORBIDDEN:
                raise VerificationFailed(code) from None
            if exc.response.status_code == httpx.codes.UNAUTHORIZED:
                raise _Unauthorized(token) from None
            raise _classify(exc) from exc
        return response

    async def _bearer(self, deadline: float) -> str:
        if self._token is not None and self._clock() < self._token_valid_until:
            return self._token
        async with self._token_lock:  # one token request at a time; the others reuse its answer
            if self._token is not None and self._clock() < self._token_valid_until:
                return self._token
            response = await self._http.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
                timeout=self._timeout(deadline),
            )
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as exc:
                error = _classify(exc)
                if isinstance(error, PortalError):
                    log.error("portal_token_refused", status=response.status_code)
                raise error from exc
            try:
                token = TokenResponse.model_validate_json(response.content)
            except ValidationError as exc:
                log.error("portal_token_malformed", problems=_problems(exc))
                raise PortalError("malformed token response") from None
            obtained = self._clock()
            # Refresh shortly before expiry, so a token never expires on its way to the portal.
            margin = min(self.token_margin_s, token.expires_in / 10)
            self._token = token.access_token
            self._token_valid_until = obtained + token.expires_in - margin
            log.info("portal_token_obtained", expires_in=token.expires_in)
            return self._token

    def _forget_token(self, token: str) -> None:
        if self._token == token:  # a concurrent call may already have fetched a newer one
            self._token = None
            self._token_valid_until = 0.0

    def _parse(self, response: httpx.Response, code: str, ref: str) -> Dossier:
        try:
            dossier = Dossier.model_validate_json(response.content)
        except ValidationError as exc:
            # Only where the body is wrong, never its values: they include the applicant's name.
            log.error("portal_malformed_body", dossier=ref, problems=_problems(exc))
            raise PortalError("malformed dossier body") from None
        if dossier.code.upper() != code.upper():
            log.error("portal_code_mismatch", dossier=ref)
            raise PortalError("the portal answered about another dossier")
        return dossier


def _classify(exc: httpx.HTTPStatusError) -> Exception:
    """429 and 5xx may pass with time; any other error status will not."""
    status = exc.response.status_code
    if status == httpx.codes.TOO_MANY_REQUESTS:
        return _Retryable("429", parse_retry_after(exc.response.headers.get("Retry-After")))
    if exc.response.is_server_error:
        return _Retryable(str(status))
    return PortalError(f"portal answered HTTP {status}")


def _problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or '<body>'}:{e['type']}" for e in exc.errors()[:10]]
