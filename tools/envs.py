"""Build the two Python environments, cached outside the repo and keyed by the hash of their lock files.

Run with the machine's python3 (standard library only). `python3 tools/envs.py bot|rasa` makes sure the
environment exists and points the repo's `.venv` / `.rasa-venv` symlink at it; an unchanged lock reuses the
cached build, so a second `make` (or CI on a clean clone of the same commit) installs nothing.

Why by hand rather than a tool such as uv or pip-tools: we need two interpreters (3.11 for the bot, 3.10 for
Rasa 3.6.21, which refuses 3.11), a cache shared across clones, and progress output — a hundred lines of stdlib
is simpler than teaching a third tool all of that.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CA_CACHE_DIR", Path.home() / ".cache" / "citizen-assistant"))

BOT_LOCKS = ["requirements.txt", "requirements-dev.txt", "constraints.txt"]
RASA_LOCK = "nlu/requirements-rasa.lock"


def say(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def digest(paths: list[str], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.encode())
        h.update((ROOT / p).read_bytes())
    return h.hexdigest()[:12]


def python_version(exe: str) -> str | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def find_python310() -> str:
    candidates = [shutil.which("python3.10") or ""]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if shutil.which("pyenv"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            pyenv_root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.10.*/bin/python3.10"), reverse=True)
    for exe in candidates:
        if exe and (python_version(exe) or "").startswith("3.10."):
            return exe
    sys.exit(
        "[setup] Python 3.10 was not found. Rasa 3.6.21 (the NLU server) needs Python 3.10 and refuses 3.11.\n"
        "        Install it, e.g. `pyenv install 3.10.13` or your distribution's python3.10 package\n"
        "        (with venv support), then run the command again."
    )


def run_with_progress(cmd: list[str], label: str, log: Path) -> None:
    """Run a long command with its output in `log`, printing elapsed time so nobody wonders if it hung."""
    start = time.monotonic()
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(15):
            say(f"  … {label}: {time.monotonic() - start:.0f} s (log: {log})")

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    done.set()
    thread.join()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        sys.exit(f"[setup] {label} failed (exit {proc.returncode}). Last lines of {log}:\n{tail}")
    say(f"  {label} took {time.monotonic() - start:.0f} s")


def ensure(name: str, python: str, locks: list[str], install: list[list[str]], link: str) -> Path:
    version = python_version(python) or "unknown"
    key = digest(locks, f"{version}|{sys.platform}")
    target = CACHE / "venvs" / f"{name}-{key}"
    marker = target / ".complete"
    if not marker.exists():
        say(f"creating the {name} environment (Python {version}) in {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # A venv records its own path, so it is built at its final place; the marker says it is complete.
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(target)], check=True)
        pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        for step in install:
            run_with_progress(pip + step, f"{name}: pip {' '.join(step[:2])}", target / "install.log")
        marker.write_text(key)
    link_path = ROOT / link
    if link_path.is_symlink() or link_path.exists():
        if link_path.resolve() == target.resolve():
            return target
        if link_path.is_symlink() or link_path.is_file():
            link_path.unlink()
        else:
            shutil.rmtree(link_path)
    link_path.symlink_to(target)
    say(f"{link} -> {target}")
    return target


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in {"bot", "rasa"}:
        sys.exit("usage: tools/envs.py bot|rasa")
    if argv[0] == "bot":
        if sys.version_info < (3, 11):  # noqa: UP036 (runs on whatever python3 the machine has)
            sys.exit("[setup] the bot needs Python 3.11 or newer as python3")
        ensure(
            "bot",
            sys.executable,
            BOT_LOCKS,
            [["install", "-q", "-r", str(ROOT / "requirements-dev.txt"), "-c", str(ROOT / "constraints.txt")]],
            ".venv",
        )
    else:
        py = find_python310()
        lock = str(ROOT / RASA_LOCK)
        ensure(
            "rasa",
            py,
            [RASA_LOCK],
            [
                ["install", "-q", "pip==24.0"],
                ["install", "-q", "--no-deps", "-r", lock],
            ],
            ".rasa-venv",
        )


if __name__ == "__main__":
    main(sys.argv[1:])
