"""Run the portal emulator: `python -m sandbox.portal --port 8082`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from core.logs import setup_logging
from sandbox.portal.server import DEFAULT_SEED, PortalEmulator


async def _serve(args: argparse.Namespace) -> None:
    emulator = PortalEmulator(
        Path(args.seed), client_id=args.client_id, client_secret=args.client_secret, token_ttl_s=args.token_ttl
    )
    url = await emulator.start(args.host, args.port)
    print(f"portal emulator on {url} (token URL {emulator.token_url}); Ctrl+C stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not available on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.portal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--seed", default=str(DEFAULT_SEED), help="YAML file of sample dossiers")
    parser.add_argument("--client-id", default=None, help="overrides the seed's client id")
    parser.add_argument("--client-secret", default=None, help="overrides the seed's client secret")
    parser.add_argument("--token-ttl", type=int, default=None, help="access token lifetime in seconds")
    args = parser.parse_args(argv)
    setup_logging("INFO", "console")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
