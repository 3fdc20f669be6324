"""Redaction of citizens' identifiers (12-digit ID numbers, phone numbers) and secrets from free text."""

from __future__ import annotations

import re

# 12-digit citizen ID (CCCD / căn cước), also typed in groups ("001 099 012 345"); 9-digit old CMND.
_ID = re.compile(r"(?<![\d.\-/])(?:\d[ .]?){11}\d(?![\d\-/])|(?<![\d.\-/])\d{9}(?![\d.\-/])")
# Vietnamese mobile numbers: 0xx / +84xx / 84xx followed by the subscriber digits, spaces or dots allowed.
_PHONE = re.compile(r"(?<![\d\w])(?:\+?84|0)[ .]?[35789](?:[ .]?\d){8}(?!\d)")
# Telegram bot tokens (in URLs httpx would log) and bearer tokens.
_TOKEN = re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{20,}|(?i:bearer)\s+[A-Za-z0-9._~+/-]+=*")
# Secrets in query strings: Rasa's `?token=` travels in every parse URL, and httpx's HTTPStatusError quotes it.
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|auth_token|secret|client_secret|password)=)[^&#\s'\"]+")


def redact(text: str) -> str:
    """Replace ID numbers, phone numbers and tokens with placeholders. Idempotent."""
    text = _TOKEN.sub("[secret]", text)
    text = _QUERY_SECRET.sub(r"\1[secret]", text)
    text = _PHONE.sub("[phone]", text)
    return _ID.sub("[id]", text)


def contains_pii(text: str) -> bool:
    return bool(_PHONE.search(text) or _ID.search(text))
