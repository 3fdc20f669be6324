"""Run the Rasa NLU server with its token from the environment and only the NLU routes reachable.

Run in the Rasa environment (Python 3.10): `RASA_AUTH_TOKEN=… python -m nlu.serve --model M --port P`.

Why not plain `rasa run --auth-token …`:
- the token would be on the command line, which every local user reads in `ps` / `/proc/<pid>/cmdline`. Here it is
  read from the environment (which /proc shows only to the process's owner; Rasa's own CLI has no environment
  variable for it), dropped from `os.environ` so Rasa's children do not inherit it, and handed to Rasa's argument
  parser inside this process: changing `sys.argv` does not change what the kernel shows as the command line.
- `rasa run --enable-api` also serves the REST chat channel (`/webhooks/rest/webhook`, which takes no token), the
  tracker, story and training endpoints. The bot needs only `/model/parse`; the maintainers' hot swap needs
  `PUT /model` (with the token). A request middleware answers 404 to everything else before Rasa's routes run, so
  nothing else is reachable even from loopback. A reverse proxy would do the same at the price of a second process;
  this is a dozen lines in the process that already exists.
"""

# ruff: noqa: PLC0415 - Rasa is imported after sys.argv is set and only in the Rasa environment
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

TOKEN_ENV = "RASA_AUTH_TOKEN"  # noqa: S105 (a variable name)

# (method, path) pairs that stay reachable; Rasa itself still checks the token on all of them but `/` and `/version`.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/"),
        ("GET", "/version"),
        ("GET", "/status"),
        ("POST", "/model/parse"),
        ("PUT", "/model"),  # nlu/tools/reload.py: the hot swap of a newly trained model
    }
)


def is_allowed(method: str, path: str) -> bool:
    return (method.upper(), path.rstrip("/") or "/") in ALLOWED


def _guard_routes() -> None:
    """Wrap Rasa's app factory so every app it builds refuses the routes the assistant does not use."""
    import rasa.core.run  # type: ignore[import-not-found,unused-ignore]
    from sanic import response  # type: ignore[import-not-found,unused-ignore]

    configure_app = rasa.core.run.configure_app

    def configure_guarded(*args: Any, **kwargs: Any) -> Any:
        app = configure_app(*args, **kwargs)

        @app.middleware("request")
        async def only_nlu_routes(request: Any) -> Any:
            if not is_allowed(request.method, request.path):
                return response.json({"status": "failure", "reason": "NotFound"}, status=404)
            return None

        return app

    rasa.core.run.configure_app = configure_guarded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--log-file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")
    if not token:  # its strength is checked where it is configured (core/secrets_check.py)
        print(f"{TOKEN_ENV} must be set: the token the NLU server requires on every request", file=sys.stderr)
        return 2
    _guard_routes()
    rasa_argv = ["rasa", "run", "--enable-api", "--interface", args.interface, "--port", str(args.port)]
    rasa_argv += ["--auth-token", token, "--model", args.model]
    if args.log_file:
        rasa_argv += ["--log-file", args.log_file]
    if args.quiet:
        rasa_argv.append("--quiet")
    sys.argv = rasa_argv
    from rasa.__main__ import main as rasa_main  # type: ignore[import-not-found,unused-ignore]

    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
