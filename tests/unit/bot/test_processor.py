"""bot/processor.py: one lane per chat (in order within a chat, concurrent across chats), working slots taken
only on a chat's turn, and a flooding private chat's excess dropped, never a group's."""

from __future__ import annotations

import asyncio
import datetime as dt

from telegram import Chat, Message, Update, User

from bot.processor import PerChatUpdateProcessor

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def update(update_id: int, chat_id: int, chat_type: str = Chat.PRIVATE) -> Update:
    user = User(id=abs(chat_id), first_name="An", is_bot=False)
    chat = Chat(id=chat_id, type=chat_type)
    return Update(update_id, message=Message(update_id, NOW, chat, from_user=user, text="hi"))


class Work:
    """Coroutines that record when they start and finish, and wait for a gate before finishing."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def job(self, name: str) -> None:
        self.log.append(f"start {name}")
        gate = self.gates.setdefault(name, asyncio.Event())
        await gate.wait()
        self.log.append(f"end {name}")

    def release(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def two_chats(processor: PerChatUpdateProcessor, work: Work) -> list[asyncio.Task[None]]:
    """Chat 100 sends a1 then a2, chat 200 sends b1."""
    sent = ((1, 100, "a1"), (2, 100, "a2"), (3, 200, "b1"))
    return [asyncio.create_task(processor.do_process_update(update(uid, chat), work.job(n))) for uid, chat, n in sent]


async def test_one_chat_in_order_while_another_chat_goes_on() -> None:
    processor, work = PerChatUpdateProcessor(8), Work()
    tasks = two_chats(processor, work)
    await settle()
    assert work.log == ["start a1", "start b1"]  # a2 waits for a1; b1 does not wait for anyone
    work.release("b1")
    work.release("a2")  # released early: it must still not start before a1 ends
    await settle()
    assert "start a2" not in work.log and "end b1" in work.log
    work.release("a1")
    await asyncio.gather(*tasks)
    assert work.log.index("end a1") < work.log.index("start a2")


async def test_a_chat_waiting_for_its_turn_holds_no_working_slot() -> None:
    # Two slots: a1 works, a2 waits for a1. Were slots taken before the chat's turn, a2 would hold the second
    # slot and b1 would wait behind a chat that is not its own.
    processor, work = PerChatUpdateProcessor(2), Work()
    tasks = two_chats(processor, work)
    await settle()
    assert work.log == ["start a1", "start b1"]
    for name in ("a1", "a2", "b1"):
        work.release(name)
    await asyncio.gather(*tasks)
    assert sorted(work.log) == sorted(f"{e} {n}" for e in ("start", "end") for n in ("a1", "a2", "b1"))


async def test_a_flooding_private_chat_loses_only_its_excess_and_a_group_loses_nothing() -> None:
    processor, work = PerChatUpdateProcessor(8, queued_per_chat=2), Work()
    private = [asyncio.create_task(processor.do_process_update(update(i, 100), work.job(f"p{i}"))) for i in range(1, 5)]
    group = [
        asyncio.create_task(processor.do_process_update(update(10 + i, -300, Chat.SUPERGROUP), work.job(f"g{i}")))
        for i in range(1, 5)
    ]
    await settle()
    for name in [f"p{i}" for i in range(1, 5)] + [f"g{i}" for i in range(1, 5)]:
        work.release(name)
    await asyncio.gather(*private, *group)
    assert [e for e in work.log if e.startswith("end p")] == ["end p1", "end p2"]  # p3 and p4 dropped
    assert [e for e in work.log if e.startswith("end g")] == ["end g1", "end g2", "end g3", "end g4"]


async def test_a_chat_served_again_after_its_queue_emptied_is_not_refused() -> None:
    processor, work = PerChatUpdateProcessor(8, queued_per_chat=1), Work()
    for i in range(1, 4):  # one at a time: the queue empties between them
        work.release(f"x{i}")
        await processor.do_process_update(update(i, 100), work.job(f"x{i}"))
    assert work.log == ["start x1", "end x1", "start x2", "end x2", "start x3", "end x3"]


async def test_an_update_without_a_chat_or_user_still_runs() -> None:
    processor, work = PerChatUpdateProcessor(1), Work()
    work.release("bare")
    await processor.do_process_update(Update(1), work.job("bare"))
    assert work.log == ["start bare", "end bare"]
