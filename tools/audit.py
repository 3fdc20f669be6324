"""`make audit`: pip-audit over both lock sets (the bot's and Rasa's), or a clear reason why it cannot run here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {
    "bot": ["requirements.txt", "requirements-dev.txt"],
    "rasa": ["nlu/requirements-rasa.lock"],
}
# pip-audit asks one of these for every pinned package; without either it cannot say anything.
SERVICES = {
    "pypi": ("https://pypi.org/pypi/pip/23.0/json", None),  # the per-version form pip-audit asks
    "osv": ("https://api.osv.dev/v1/query", b'{"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "23.0"}'),
}


EXCEPTIONS = ROOT / "tools" / "audit-exceptions.txt"


def accepted() -> list[str]:
    """The advisory ids listed (with their justification) in tools/audit-exceptions.txt."""
    lines = EXCEPTIONS.read_text(encoding="utf-8").splitlines() if EXCEPTIONS.exists() else []
    return [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]


def reachable(url: str, body: bytes | None) -> str | None:
    """None when the service answered usefully, else why not."""
    try:
        if body is None:
            response = httpx.get(url, timeout=5)
        else:
            response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def main() -> int:
    service = None
    for name, (url, body) in SERVICES.items():
        why = reachable(url, body)
        if why is None:
            service = name
            break
        print(f"[audit] {name} vulnerability service unreachable: {why}")
    if service is None:
        print("[audit] skipped: no vulnerability database is reachable from this machine; run `make audit` where")
        print("[audit]          PyPI's JSON API or api.osv.dev answers (e.g. a CI runner with internet access)")
        return 0
    if importlib.util.find_spec("pip_audit") is None:
        print("[audit] skipped: pip-audit is not installed in this environment (add pip-audit to requirements-dev.txt)")
        return 0
    failed = 0
    for env, locks in LOCKS.items():
        args = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--vulnerability-service", service]
        for lock in locks:
            args += ["-r", str(ROOT / lock)]
        for vuln in accepted():
            args += ["--ignore-vuln", vuln]
        # --no-deps: the lock files pin every package already; resolving again would need the index.
        print(f"[audit] {env}: {' '.join(locks)}", flush=True)
        failed |= subprocess.call([*args, "--no-deps"], cwd=ROOT)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
