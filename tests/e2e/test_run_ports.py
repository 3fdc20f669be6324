"""`make run` with a real token says which fixed port is taken, before starting anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_taken_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()  # another program serving on what would be Rasa's port
        busy = taken.getsockname()[1]
        free.bind(("127.0.0.1", 0))
        free_port = free.getsockname()[1]
        free.close()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "HEALTH_", "CONSOLE_", "WEBHOOK_"))},
            "TELEGRAM_BOT_TOKEN": "123456:TEST-test-test-test-test-test",
            "RASA_URL": f"http://127.0.0.1:{busy}",
            "HEALTH_PORT": str(free_port),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "tools.run"],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the Rasa server (RASA_URL) 127.0.0.1:{busy}" in done.stdout
    assert "HEALTH_PORT" not in done.stdout  # the free one is not reported
    assert "starting the Rasa NLU server" not in done.stdout
