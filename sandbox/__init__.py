"""Local stand-ins for the external services (Telegram Bot API, provincial portal): real HTTP servers."""
