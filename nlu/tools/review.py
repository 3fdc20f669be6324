"""Export the bot's NLU review queue (table nlu_review) as a Rasa YAML draft grouped by predicted intent.

The rows are already PII-redacted by the bot. A maintainer checks each line, moves it under the right intent
and pastes it into data/nlu/<area>.yml (never into data/nlu_heldout/).

Usage (repo root):  python -m nlu.tools.review [--database-url URL] [--since-days N] [--out FILE]
The URL defaults to $DATABASE_URL, then DATABASE_URL in .env, then the bot's default sqlite file
var/assistant.db, then the local sandbox's var/sandbox.db (`make run` without a Telegram token). sqlite URLs are
read with the standard library; PostgreSQL URLs need psycopg (3) or psycopg2.
"""

# ruff: noqa: PLC0415 - Rasa, TensorFlow and the database drivers are imported where used: importing them
# costs seconds, and the bot environment (tests, linters) has none of them.

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nlu.figures import utcnow
from nlu.tools.common import DATA, ROOT, fold

FALLBACK = "nlu_fallback"
# Rows a maintainer already labelled or dismissed in the web console (console/review.py) are not drafted again.
QUERY = "SELECT text, intent, confidence, ranking, reason, created_at FROM nlu_review WHERE status = 'open'"


@dataclass
class Row:
    text: str
    intent: str | None
    confidence: float
    ranking: list[tuple[str, float]]
    reason: str
    created_at: str


def _parse_ranking(raw: Any) -> list[tuple[str, float]]:
    try:
        items = json.loads(raw) if isinstance(raw, str) else (raw or [])
        out = []
        for item in items:
            if isinstance(item, dict):
                out.append((str(item.get("name")), float(item.get("confidence") or 0.0)))
            else:
                out.append((str(item[0]), float(item[1])))
        return out
    except (ValueError, TypeError, IndexError, KeyError):
        return []


def fetch(url: str, since: dt.datetime | None) -> list[Row]:
    """Read the queue from sqlite (stdlib) or PostgreSQL (psycopg/psycopg2), oldest first."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    params: tuple[Any, ...] = ()
    if scheme == "sqlite":
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise SystemExit(f"nlu-review: not a sqlite file URL: {url}")
        if not Path(path).is_file():
            raise SystemExit(f"nlu-review: no database at {path} (pass --database-url or set DATABASE_URL)")
        uri = f"file:{path}?mode=ro"
        where = " AND created_at >= ?" if since else ""
        params = (since.strftime("%Y-%m-%d %H:%M:%S"),) if since else ()
        with sqlite3.connect(uri, uri=True) as conn:
            rows = conn.execute(QUERY + where + " ORDER BY created_at", params).fetchall()
    elif scheme in ("postgresql", "postgres"):
        dsn = parts._replace(scheme="postgresql").geturl()
        where = " AND created_at >= %s" if since else ""
        params = (since,) if since else ()
        try:
            import psycopg  # type: ignore[import-not-found,unused-ignore]

            with psycopg.connect(dsn) as conn:
                rows = conn.execute(QUERY + where + " ORDER BY created_at", params).fetchall()
        except ImportError:
            import psycopg2  # type: ignore[import-not-found,import-untyped,unused-ignore]

            conn2 = psycopg2.connect(dsn)
            try:
                with conn2.cursor() as cur:
                    cur.execute(QUERY + where + " ORDER BY created_at", params)
                    rows = cur.fetchall()
            finally:
                conn2.close()
    else:
        raise SystemExit(f"nlu-review: unsupported database URL scheme {parts.scheme!r}")
    return [
        Row(str(t), i, float(c or 0.0), _parse_ranking(r), str(reason or ""), str(created))
        for t, i, c, r, reason, created in rows
    ]


def known_texts() -> set[str]:
    """Folded training examples, so the draft does not repeat what the model already learns from."""
    out = set()
    for path in DATA.glob("*.yml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("- ") and not stripped.startswith(
                ("- intent:", "- synonym:", "- lookup:", "- regex:")
            ):
                out.add(" ".join(fold(stripped[2:]).split()))
    return out


def best_guess(row: Row) -> tuple[str, float]:
    if row.intent and row.intent != FALLBACK:
        return row.intent, row.confidence
    for name, conf in row.ranking:
        if name != FALLBACK:
            return name, conf
    return FALLBACK, row.confidence


def render(rows: list[Row], skip: set[str], heading: str | None = None, grouped_as: str = "predicted") -> str:
    """The Rasa YAML: one block per intent (`best_guess`: the row's intent unless it is the fallback), each line
    commented with its confidence, reason and time. The console passes rows whose intent a maintainer assigned,
    with its own heading and `grouped_as="labelled"`."""
    groups: dict[str, list[Row]] = defaultdict(list)
    seen: set[str] = set()
    for row in rows:
        text = " ".join(row.text.split())
        key = fold(text)
        if not text or key in seen or key in skip:
            continue
        seen.add(key)
        groups[best_guess(row)[0]].append(replace(row, text=text))
    count = sum(len(g) for g in groups.values())
    lines = [
        'version: "3.1"',
        heading.format(count=count, rows=len(rows))
        if heading
        else f"# Draft from the nlu_review queue: {count} distinct messages ({len(rows)} rows). Check every line"
        " and move it under the right intent before adding it to data/nlu/.",
        "nlu:",
    ]
    for intent in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        members = groups[intent]
        lines.append(f"# {grouped_as} {intent}: {len(members)}")
        for row in members:
            runner = next(((n, c) for n, c in row.ranking if n not in (intent, FALLBACK)), None)
            extra = f"; runner-up {runner[0]} {runner[1]:.2f}" if runner else ""
            lines.append(f"#   {best_guess(row)[1]:.2f} {row.reason or '-'} {row.created_at[:16]}{extra}: {row.text}")
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {row.text}" for row in members)
    return "\n".join(lines) + "\n"


def default_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    env_file = ROOT / ".env"
    if env_file.is_file():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "DATABASE_URL" and value.strip():
                return value.strip().strip("'\"")
    for name in ("assistant.db", "sandbox.db"):
        if (ROOT / "var" / name).is_file():
            return f"sqlite+aiosqlite:///{ROOT / 'var' / name}"
    return f"sqlite+aiosqlite:///{ROOT / 'var' / 'assistant.db'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=default_url())
    ap.add_argument("--since-days", type=int, help="only rows from the last N days")
    ap.add_argument("--out", type=Path, help="write here instead of stdout")
    ap.add_argument("--keep-known", action="store_true", help="keep messages already in data/nlu")
    args = ap.parse_args(argv)
    since = utcnow() - dt.timedelta(days=args.since_days) if args.since_days else None
    rows = fetch(args.database_url, since)
    text = render(rows, set() if args.keep_known else known_texts())
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"nlu-review: {len(rows)} rows -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
