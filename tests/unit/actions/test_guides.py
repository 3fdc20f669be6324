"""The VNeID guides end to end: steps, troubleshooting detours, saved progress, and a graph check of every flow."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import store.models_guides  # noqa: F401  (registers the tables on Base.metadata)
from actions.base import Context
from actions.eid import EidCapability
from actions.feedback import FeedbackCapability
from actions.guides import decode_stack, encode_stack, resume_button, seek
from actions.procedures import ProceduresCapability
from actions.renewal import RenewalCapability
from core.settings import Settings
from kernel import callbacks
from kernel.content import Content
from kernel.content_schema import ASPECTS, guides_section, procedures_section
from kernel.types import Button, Entity, Incoming, Reply, Understanding
from store.all_models import Base
from store.models import User
from store.models_guides import GuideProgress, RenewalDialogue

NOW = dt.datetime(2025, 6, 15, 3, 0, tzinfo=dt.UTC)
USER = 4242


async def _fake_remind(inc: Incoming, ctx: Context, due: dt.date) -> list[Reply]:
    return [Reply(f"remind {due.isoformat()}")]


class Harness:
    """One citizen talking to the capabilities; every message is its own unit of work, as in the bot."""

    def __init__(self, engine: AsyncEngine, content: Content, lang: str = "vi") -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.content = content
        self.lang = lang
        self.settings = Settings(_env_file=None)  # type: ignore[call-arg]
        procedures = ProceduresCapability(content)
        self.caps: list[Any] = [
            EidCapability(content),
            procedures,
            RenewalCapability(content, remind=_fake_remind, procedures=procedures),
            FeedbackCapability(),
        ]

    async def _run(self, inc: Incoming, kind: str) -> list[Reply]:
        async with self.sessions() as session:
            user = await session.get(User, USER)
            if user is None:
                user = User(id=USER, chat_id=USER, lang=self.lang)
                session.add(user)
                await session.flush()
            ctx = Context(self.content, self.settings, session, user, NOW)
            if kind == "intent":
                assert inc.nlu is not None
                cap = next(c for c in self.caps if inc.nlu.intent in c.intents)
                replies: list[Reply] = await cap.on_intent(inc, ctx)
            else:
                assert inc.callback is not None
                cap = next(c for c in self.caps if inc.callback[0] in c.callbacks)
                replies = await cap.on_callback(inc, ctx)
            await session.commit()
            return replies

    async def intent(self, name: str, **entities: str) -> list[Reply]:
        nlu = Understanding(name, 0.9, tuple(Entity(k, v) for k, v in entities.items()))
        return await self._run(Incoming(USER, USER, self.lang, text="…", nlu=nlu), "intent")

    async def press(self, button: Button | str) -> list[Reply]:
        data = button if isinstance(button, str) else button.data
        action, args = callbacks.decode(data)  # exactly what the router does with untrusted payloads
        return await self._run(Incoming(USER, USER, self.lang, callback=(action, args)), "callback")

    async def stack(self) -> str | None:
        async with self.sessions() as session:
            row = await session.get(GuideProgress, USER)
            return row.stack if row else None

    async def set_stack(self, stack: str | None) -> None:
        async with self.sessions() as session, session.begin():
            row = await session.get(GuideProgress, USER)
            if row is not None:
                await session.delete(row)
            if stack is not None:
                session.add(GuideProgress(user_id=USER, stack=stack, updated_at=NOW))

    async def resume_button(self) -> Button | None:
        async with self.sessions() as session:
            user = await session.get(User, USER)
            assert user is not None
            return await resume_button(Context(self.content, self.settings, session, user, NOW))


def labels(reply: Reply) -> list[str]:
    return [b.label for row in reply.buttons for b in row]


def button(reply: Reply, label: str) -> Button:
    for row in reply.buttons:
        for b in row:
            if label in b.label:
                return b
    raise AssertionError(f"no button {label!r} in {labels(reply)}")


@pytest.fixture
def bot(db: AsyncEngine, content: Content) -> Harness:
    return Harness(db, content)


async def test_walk_level1_guide_to_its_end(bot: Harness, content: Content) -> None:
    [reply] = await bot.intent("eid_activate", eid_level="1")
    steps = guides_section(content).guides["level1"].steps
    for n, step in enumerate(steps, start=1):
        assert f"Bước {n}/6" in reply.text
        assert content.text(step.text, "vi") in reply.text
        assert "✅ Xong" in labels(reply) and "☰ Menu" in labels(reply)
        assert ("◀️ Quay lại" in labels(reply)) == (n > 1)  # nothing to go back to on the first step
        assert await bot.stack() == f"level1:{n}"
        [reply] = await bot.press(button(reply, "Xong"))
    assert content.text("eid.level1.done", "vi") in reply.text
    assert "🔓 Kích hoạt tài khoản" in labels(reply) and "🏢 Làm mức 2 tại công an" in labels(reply)
    assert await bot.stack() is None  # finished: nothing left to resume
    assert await bot.resume_button() is None
    [reply] = await bot.press(button(reply, "Kích hoạt"))  # what next: the activation guide
    assert "Kích hoạt tài khoản VNeID" in reply.text and "Bước 1/7" in reply.text


async def test_scan_detour_returns_to_the_same_step(bot: Harness) -> None:
    [reply] = await bot.intent("eid_activate", eid_level="1")
    for _ in range(2):
        [reply] = await bot.press(button(reply, "Xong"))
    assert "Bước 3/6" in reply.text and "NFC" in reply.text
    [reply] = await bot.press(button(reply, "Không được"))
    assert "Không quét được thẻ (NFC/QR)" in reply.text and "Bước 1/3" in reply.text
    assert "quay lại bước 3" in reply.text  # the detour says where it will come back to
    assert await bot.stack() == "level1:3>scan:1"
    [reply] = await bot.press(button(reply, "Xong"))
    assert "Bước 2/3" in reply.text and "QR" in reply.text
    [reply] = await bot.press(button(reply, "Xong"))
    [reply] = await bot.press(button(reply, "Xong"))
    assert "Đã quét được thẻ." in reply.text
    assert labels(reply) == ["↩️ Quay lại bước 3", "☰ Menu"]
    assert await bot.stack() == "level1:3"
    [reply] = await bot.press(button(reply, "Quay lại bước 3"))
    assert "Bước 3/6" in reply.text and "Đăng ký VNeID mức 1" in reply.text
    [reply] = await bot.press(button(reply, "Xong"))
    assert "Bước 4/6" in reply.text and await bot.stack() == "level1:4"


async def test_back_from_a_branch_first_step_leaves_the_detour(bot: Harness) -> None:
    await bot.intent("eid_activate", eid_level="2")
    for _ in range(4):
        [reply] = await bot.press(button((await bot.press("g_cont"))[0], "Xong"))
    assert "Bước 5/6" in reply.text
    [reply] = await bot.press(button(reply, "Không được"))
    assert "Không nhận được mã OTP" in reply.text and await bot.stack() == "level2:5>otp:1"
    [reply] = await bot.press(button(reply, "Quay lại"))
    assert "Bước 5/6" in reply.text and await bot.stack() == "level2:5"


async def test_nested_detour_to_hotline_has_no_further_failure_button(bot: Harness) -> None:
    [reply] = await bot.intent("eid_otp_problem")
    assert "Không nhận được mã OTP" in reply.text and await bot.stack() == "otp:1"
    [reply] = await bot.press(button(reply, "Xong"))
    [reply] = await bot.press(button(reply, "Không được"))  # step 2 falls back to the guide's default
    assert "1900 0368" in reply.text and await bot.stack() == "otp:2>hotline:1"
    assert "❌ Không được" not in labels(reply)
    [reply] = await bot.press(button(reply, "Xong"))
    assert "công an xã/phường" in reply.text
    [reply] = await bot.press(button(reply, "Xong"))
    assert labels(reply)[0] == "↩️ Quay lại bước 2"
    [reply] = await bot.press(button(reply, "Quay lại bước 2"))
    assert "Bước 2/3" in reply.text and await bot.stack() == "otp:2"


async def test_resume_after_restart_from_the_same_database_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    first = Harness(engine, Content.load())
    [reply] = await first.intent("eid_activate", eid_level="1")
    for _ in range(3):
        [reply] = await first.press(button(reply, "Xong"))
    assert "Bước 4/6" in reply.text
    await engine.dispose()

    engine = create_async_engine(url)  # a new process: new engine, content and capabilities
    second = Harness(engine, Content.load())
    resume = await second.resume_button()
    assert resume is not None and resume.label == "▶️ Tiếp tục hướng dẫn"
    [reply] = await second.intent("resume_guide")
    assert "Mình tiếp tục từ chỗ bạn dừng lại" in reply.text and "Bước 4/6" in reply.text
    [reply] = await second.press(resume)
    assert "Bước 4/6" in reply.text and "Chụp lại" in reply.text
    await engine.dispose()


async def test_resume_without_progress_offers_the_guides(bot: Harness) -> None:
    [reply] = await bot.intent("resume_guide")
    assert "Bạn chưa có hướng dẫn nào đang làm dở" in reply.text
    assert "📲 Đăng ký mức 1" in labels(reply)


async def test_activate_without_level_asks_with_buttons(bot: Harness) -> None:
    [reply] = await bot.intent("eid_activate")
    assert "mức nào" in reply.text
    assert labels(reply) == ["Mức 1", "Mức 2", "☰ Menu"]
    assert await bot.stack() is None
    [reply] = await bot.press(button(reply, "Mức 2"))
    assert "Làm tài khoản VNeID mức 2" in reply.text and await bot.stack() == "level2:1"


async def test_forgot_password_asks_which_with_buttons(bot: Harness) -> None:
    [reply] = await bot.intent("eid_forgot_password")
    assert "passcode" in reply.text
    [reply] = await bot.press(button(reply, "Quên passcode"))
    assert "Quên passcode VNeID" in reply.text and "Bước 1/2" in reply.text


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ("eid_face_nfc_problem", "quét thẻ"),
        ("eid_change_phone", "đổi số điện thoại"),
        ("eid_account_locked", "Tài khoản VNeID bị khoá"),
        ("eid_info", "Mức 2"),
    ],
)
async def test_each_eid_intent_answers(bot: Harness, intent: str, expected: str) -> None:
    [reply] = await bot.intent(intent)
    assert expected in reply.text
    assert reply.buttons


async def test_english_step_header(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content, lang="en")
    [reply] = await bot.intent("eid_activate", eid_level="1")
    assert "Step 1 of 6" in reply.text and "✅ Done" in labels(reply)
    [reply] = await bot.press(button(reply, "Done"))
    assert "Step 2 of 6" in reply.text and "◀️ Back" in labels(reply)


async def test_stale_and_forged_buttons_are_safe(bot: Harness) -> None:
    [reply] = await bot.intent("eid_activate", eid_level="1")
    old = button(reply, "Xong")
    for _ in range(3):
        [reply] = await bot.press(button(reply, "Xong"))
    assert await bot.stack() == "level1:4"
    [reply] = await bot.press(old)  # [Done] from the step-1 message, pressed again later
    assert "Bước 2/6" in reply.text and await bot.stack() == "level1:2"
    [reply] = await bot.press("g_done|level1|99")
    assert "Bạn muốn được hướng dẫn việc gì" in reply.text
    assert await bot.stack() == "level1:2"
    [reply] = await bot.press("g_start|nosuch")
    assert "Bạn muốn được hướng dẫn việc gì" in reply.text


async def test_progress_row_is_deleted_with_the_user(bot: Harness, db: AsyncEngine) -> None:
    await bot.intent("eid_activate", eid_level="1")
    async with db.begin() as conn:
        await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        await conn.exec_driver_sql("DELETE FROM users")
        rows = (await conn.execute(select(GuideProgress))).all()
    assert rows == []


# --- graph check -----------------------------------------------------------------------------------------

_STEP = re.compile(r"^g_done\|([a-z0-9_]+)\|(\d+)$")


@pytest.mark.parametrize("lang", ["vi", "en"])
async def test_every_button_of_every_flow_leads_somewhere(db: AsyncEngine, content: Content, lang: str) -> None:
    bot = Harness(db, content, lang=lang)
    router_own = {"c_menu", "c_intent"}  # the main menu and a button-started intent, answered by actions/router.py
    handled = {action for cap in bot.caps for action in cap.callbacks} | router_own
    book = guides_section(content)
    procs = procedures_section(content)

    seeds: list[Reply] = []
    for intent in EidCapability.intents:
        seeds += await bot.intent(intent)
    seeds += await bot.intent("eid_activate", eid_level="1")
    seeds += await bot.intent("procedure_info")
    seeds += await bot.intent("id_card_renewal")

    # A step button is pressed in the state it was shown in, as a citizen would press it right away. What
    # of the saved stack matters to it is the detour it sits in (the frames below its guide), so that and
    # the payload make one node. Every other button is pressed in whatever state the walk is in.
    Node = tuple[str, str | None]
    queue: list[Node] = [(callbacks.encode("g_menu", m), None) for m in book.menus]
    seen: set[Node] = set()
    positional = {"g_done", "g_fail", "g_back", "g_ret"}

    async def collect(reply: Reply, via: str) -> None:
        assert reply.text.strip(), f"empty message after {via}"
        assert reply.buttons, f"dead end (no button) after {via}: {reply.text[:80]!r}"
        frames = decode_stack(await bot.stack() or "", book)
        for row in reply.buttons:
            for b in row:
                assert b.label.strip(), f"unlabelled button after {via}"
                action, args = callbacks.decode(b.data)
                assert action in handled, f"{b.data} (after {via}) is handled by no capability"
                if action in ("r_remind", *FeedbackCapability.callbacks, *router_own):
                    continue  # the reminders and feedback capabilities own what happens next (tested there)
                below = None
                if action in positional:
                    below = encode_stack(seek(frames, args[0], int(args[1]))[:-1])
                queue.append((b.data, below))

    for reply in seeds:
        await collect(reply, "an intent")
    pickers = 0
    while queue:
        node = queue.pop()
        if node in seen:
            continue
        data, below = node
        if data.startswith("r_pick|"):
            # Date pickers fan out into thousands of payloads: walk a sample, through to the answer.
            pickers += 1
            if pickers > 60:
                continue
        seen.add(node)
        action, args = callbacks.decode(data)
        if action in positional:
            await bot.set_stack(">".join(p for p in (below, f"{args[0]}:{args[1]}") if p))
        replies = await bot.press(data)
        assert replies, f"{data} produced no reply"
        for reply in replies:
            await collect(reply, data)

    pressed = {data for data, _ in seen}
    shown_steps = {(m[1], int(m[2])) for d in pressed if (m := _STEP.match(d))}
    every_step = {(gid, n) for gid, g in book.guides.items() for n in range(1, len(g.steps) + 1)}
    assert every_step <= shown_steps, f"unreachable steps: {sorted(every_step - shown_steps)}"
    assert {f"g_menu|{m}" for m in book.menus} <= pressed
    assert {f"g_fail|{gid}|{n}" for gid, n in every_step if book.guides[gid].branch_for(n)} <= pressed
    every_aspect = {f"p_show|{pid}|{a}" for pid in procs.order for a in (*ASPECTS, "mistakes")}
    assert every_aspect <= pressed, f"unreachable answers: {sorted(every_aspect - pressed)}"
    # every step a detour can start from is returned to by some branch's "back to step N"
    returns = {f"g_ret|{gid}|{n}" for gid, n in every_step if book.guides[gid].branch_for(n)}
    assert returns <= pressed, f"detours that never lead back: {sorted(returns - pressed)}"
    assert any(d.startswith("r_pick|i|") and len(d) == 17 for d in pressed)  # a renewal answered by buttons


async def test_an_id_card_question_naming_an_aspect_is_answered_in_one_reply(bot: Harness, content: Content) -> None:
    """ "Cấp lại căn cước bị mất hết bao nhiêu tiền?" is the ID card's fee, at once; the age rule is a button away."""
    [reply] = await bot.intent("id_card_renewal", aspect="fee", procedure="id_card")
    name = content.text("procedures.id_card.name", "vi")
    assert name in reply.text and content.text("procedures.aspect.fee", "vi") in reply.text
    assert content.text("renewal.ask_birth", "vi") not in reply.text  # no date question in front of the answer
    async with bot.sessions() as session:
        assert await session.get(RenewalDialogue, USER) is None  # and no date of birth is waited for
    [rule] = await bot.press(button(reply, content.text("renewal.btn_when", "vi")))
    assert content.text("renewal.ask_birth", "vi") in rule.text


async def test_an_aspect_of_another_procedure_does_not_hijack_the_renewal(bot: Harness, content: Content) -> None:
    [reply] = await bot.intent("id_card_renewal", aspect="fee", procedure="passport")
    assert content.text("renewal.ask_birth", "vi") in reply.text


async def test_the_renewal_question_offers_the_procedure_itself(bot: Harness, content: Content) -> None:
    [reply] = await bot.intent("id_card_renewal")
    assert content.text("renewal.ask_birth", "vi") in reply.text
    [overview] = await bot.press(button(reply, content.text("renewal.btn_procedure", "vi")))
    assert content.text("procedures.id_card.name", "vi") in overview.text
    assert content.text("procedures.aspect.documents", "vi") in labels(overview)
