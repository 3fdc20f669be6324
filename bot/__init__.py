"""The Telegram adapter: Updates in, the assistant's replies out. The only package that imports `telegram`."""
