"""The bot's client for the Rasa NLU server's `/model/parse` (one pooled aiohttp session, explicit timeouts).

aiohttp rather than httpx: a parse is made for every typed message, and in the bot's profile httpx's per-request
layers (httpcore's pool, anyio's streams, its request/response models) cost as much CPU as the rest of the NLU
step; aiohttp parses HTTP in C (docs/benchmarks.md, the conversation benchmark).
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog

from kernel.types import Entity, Understanding

log = structlog.get_logger(__name__)

# Zero-width and formatting characters that citizens' keyboards and copy-paste leave in text.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
MAX_TEXT = 1000  # Rasa featurises every character; a 4,096-character paste says nothing more than its start


class NluUnavailable(Exception):
    """The NLU server is down, too slow, or answered something unusable."""


def clean_text(text: str) -> str:
    """NFC-normalise (decomposed Vietnamese must read like composed), drop invisible characters, squeeze spaces."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    return " ".join(text.split())[:MAX_TEXT]


class NluClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        cooldown_s: float = 5.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # connect covers waiting for a pooled connection as well as connecting; sock_read bounds the answer.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout * 2, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        # Called with (path, HTTP status or None when no answer came, seconds) after each request: the health
        # endpoint's NLU latency and error figures.
        self.observers: list[Callable[[str, int | None, float], None]] = []
        self._token = token
        self._cooldown_s = cooldown_s
        self._down_since: float | None = None
        self._retry_at = 0.0

    async def parse(self, text: str) -> Understanding:
        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at:
            # While the server is known down, answer at once instead of making every citizen wait a timeout.
            raise NluUnavailable("nlu server down (cooling off)")
        try:
            status, body = await self._request("POST", "/model/parse", {"text": clean_text(text)})
            if status != 200:
                raise NluUnavailable(f"HTTP {status}")
            result = _understanding(json.loads(body))
        except (aiohttp.ClientError, TimeoutError, NluUnavailable, ValueError, KeyError, TypeError) as exc:
            self._mark_down(exc)
            raise NluUnavailable(str(exc) or type(exc).__name__) from exc
        if self._down_since is not None:
            log.info("nlu.recovered", down_s=round(time.monotonic() - self._down_since, 1))
            self._down_since = None
        return result

    def _mark_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning("nlu.down", error=type(exc).__name__, detail=str(exc)[:200])
        self._retry_at = now + self._cooldown_s

    async def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=32, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        started = time.monotonic()
        status: int | None = None
        try:
            async with self._session.request(
                method,
                self._base_url + path,
                params={"token": self._token},
                json=payload,
                timeout=client_timeout or self._timeout,
            ) as resp:
                status = resp.status
                return status, await resp.read()
        finally:
            for observe in self.observers:
                observe(path, status, time.monotonic() - started)

    async def ready(self) -> bool:
        try:
            status, body = await self._request("GET", "/status")
            return status == 200 and bool(json.loads(body).get("model_file"))
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            return False

    async def status(self) -> dict[str, Any] | None:
        """The server's GET /status (which model it runs), or None when it does not answer."""
        try:
            status, body = await self._request("GET", "/status")
            data = json.loads(body) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    async def load_model(self, model_file: str, timeout_s: float = 300.0) -> str | None:
        """Hot-swap the server's model (Rasa's PUT /model: it loads the new model fully, then switches; a failed
        load leaves the old one answering). Returns None on success, else why it failed, for the maintainer."""
        try:
            status, body = await self._request(
                "PUT", "/model", {"model_file": model_file}, aiohttp.ClientTimeout(total=timeout_s)
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if status not in {200, 204}:
            return f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _understanding(body: dict[str, Any]) -> Understanding:
    intent = body.get("intent") or {}
    entities = tuple(
        Entity(
            entity=str(e["entity"]),
            value=str(e.get("value", "")),
            start=int(e.get("start", 0)),
            end=int(e.get("end", 0)),
        )
        for e in body.get("entities") or ()
    )
    ranking = tuple((str(r["name"]), float(r.get("confidence", 0.0))) for r in body.get("intent_ranking") or ())
    name = intent.get("name")
    return Understanding(
        intent=str(name) if name else None,
        confidence=float(intent.get("confidence") or 0.0),
        entities=entities,
        ranking=ranking,
    )
