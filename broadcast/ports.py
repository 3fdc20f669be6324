"""What the engine needs from the channel beyond `kernel.outbox.Sender`: editing its progress message."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kernel.types import Reply


@runtime_checkable
class MessageEditor(Protocol):
    """Edit a message the bot sent (Telegram editMessageText). Implemented by the sender when it can."""

    async def edit(self, chat_id: int, message_id: int, reply: Reply) -> None:
        """Replace the text and buttons; raises the same errors as Sender.send (a "not modified" is not one)."""
        ...
