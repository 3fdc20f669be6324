"""The staff and maintainers' web console: dashboard, review queue, served by the bot process on CONSOLE_PORT."""
