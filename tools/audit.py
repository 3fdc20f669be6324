"""`make audit`: pip-audit over everything installed in both environments (the bot's and Rasa's).

What is audited is each environment's full installed set (`pip freeze`: the top-level pins and every transitive
package), not the top-level requirement files. Where no vulnerability database is reachable the audit cannot say
anything, and that is a failure, not a pass: it exits 1 unless AUDIT_OFFLINE_OK=1 is set, which CI sets on
machines that reach only the package index, printing a warning.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = {"bot": ROOT / ".venv" / "bin" / "python", "rasa": ROOT / ".rasa-venv" / "bin" / "python"}
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


def frozen(python: Path) -> str:
    """Every package installed in the environment of `python`, pinned (`pip freeze`)."""
    out = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout


def main() -> int:
    service = None
    for name, (url, body) in SERVICES.items():
        why = reachable(url, body)
        if why is None:
            service = name
            break
        print(f"[audit] {name} vulnerability service unreachable: {why}")
    if service is None:
        if os.environ.get("AUDIT_OFFLINE_OK") == "1":
            print("[audit] WARNING: NOT AUDITED. No vulnerability database is reachable from this machine and")
            print("[audit]          AUDIT_OFFLINE_OK=1 accepts that; run `make audit` where PyPI's JSON API or")
            print("[audit]          api.osv.dev answers before a release.")
            return 0
        print("[audit] FAILED: no vulnerability database is reachable, so nothing was audited. Run it where PyPI's")
        print("[audit]         JSON API or api.osv.dev answers, or set AUDIT_OFFLINE_OK=1 to accept not auditing.")
        return 1
    if importlib.util.find_spec("pip_audit") is None:
        print("[audit] FAILED: pip-audit is not installed in this environment (it is pinned in requirements-dev.txt)")
        return 1
    failed = 0
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        for env, python in ENVIRONMENTS.items():
            if not python.exists():
                print(f"[audit] FAILED: the {env} environment is missing; run `make env` first")
                return 1
            lock = Path(tmp) / f"{env}.txt"
            lock.write_text(frozen(python), encoding="utf-8")
            count = sum(1 for line in lock.read_text().splitlines() if "==" in line)
            args = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--vulnerability-service", service]
            args += ["-r", str(lock)]
            for vuln in accepted():
                args += ["--ignore-vuln", vuln]  # matched against the advisory id and its aliases (CVE, GHSA)
            # --no-deps: a freeze lists every installed package already; resolving again would need the index.
            print(f"[audit] {env}: {count} installed packages", flush=True)
            failed |= subprocess.call([*args, "--no-deps"], cwd=ROOT)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
