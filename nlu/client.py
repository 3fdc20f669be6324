"""The bot's client for the Rasa NLU server's `/model/parse` (one pooled httpx client, explicit timeouts)."""

from __future__ import annotations

import time
import unicodedata
from typing import Any

import httpx
import structlog

from actions.types import Entity, Understanding

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            transport=transport,
        )
        self._token = token
        self._cooldown_s = cooldown_s
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    async def parse(self, text: str) -> Understanding:
        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at:
            # While the server is known down, answer at once instead of making every citizen wait a timeout.
            raise NluUnavailable("nlu server down (cooling off)")
        try:
            resp = await self._client.post(
                "/model/parse", params={"token": self._token}, json={"text": clean_text(text)}
            )
            resp.raise_for_status()
            result = _understanding(resp.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
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

    async def ready(self) -> bool:
        try:
            resp = await self._client.get("/status", params={"token": self._token})
        except httpx.HTTPError:
            return False
        return resp.status_code == 200 and bool(resp.json().get("model_file"))

    async def aclose(self) -> None:
        await self._client.aclose()


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
