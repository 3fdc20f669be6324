"""The shared vocabulary every layer speaks: replies and buttons (`types`), callback payloads (`callbacks`), the
reviewed texts (`content`, checked by `content_schema`) and the outbox protocol (`outbox`).

A leaf: it imports nothing of the project but `core`, so the direction of imports stays one way
(bot/console → actions → broadcast, reminders, portal, nlu → kernel, store → core); `make lint` enforces it.
"""
