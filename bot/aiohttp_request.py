"""A python-telegram-bot request backend on aiohttp, for all the bot's Bot API calls (polling, replies, port).

PTB ships only an httpx backend. Under load the bot's main thread is CPU-bound, and the profile of a paid
broadcast put most of the cost of each sendMessage in httpx/httpcore/anyio: the pool's per-request poll of every
idle connection, anyio's locks and cancel scopes, httpx's request and header models (docs/benchmarks.md).
aiohttp — already a dependency (the sandbox servers) — parses HTTP in C and has none of those layers. PTB's
`BaseRequest` is the documented seam for this: it maps status codes and parses the JSON; this class only moves
bytes and maps transport errors the way `HTTPXRequest` does (timeouts to `TimedOut`, the rest to `NetworkError`,
the original error kept as the cause).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_JSON = {"Content-Type": "application/json"}
# "No timeout given": PTB passes its public BaseRequest.DEFAULT_NONE (a DefaultValue, whose class is private).
_DEFAULT = type(BaseRequest.DEFAULT_NONE)


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        connection_pool_size: int = 64,
        *,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 10.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None
        # Called with (url, HTTP status) after each answer: how the health endpoint counts Bot API calls.
        self.observers: list[Callable[[str, int], None]] = []

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if isinstance(read_timeout, _DEFAULT) else read_timeout
        connect = self._connect_timeout if isinstance(connect_timeout, _DEFAULT) else connect_timeout
        pool = self._pool_timeout if isinstance(pool_timeout, _DEFAULT) else pool_timeout
        # aiohttp has no write timeout of its own: a request body that cannot be written is bounded by the read
        # timeout that follows it. Its `connect` covers waiting for a free pooled connection and connecting.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        data: Any = None
        headers = None
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                data = form
            elif request_data.parameters:
                # A JSON body (the Bot API takes one): urlencoding a form percent-escapes every byte of a
                # Vietnamese text in pure Python, which was a visible share of each send's CPU.
                data, headers = request_data.json_payload, _JSON
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=timeout) as response:
                body = await response.read()
        except TimeoutError as err:  # aiohttp's timeouts (connect, socket read) are TimeoutErrors too
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        for observe in self.observers:
            observe(url, response.status)
        return response.status, body
