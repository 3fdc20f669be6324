"""Cross-cutting pieces: settings, logging with PII redaction."""
