"""Conversation load: simulated citizens chat with the bot (real Rasa, `python -m bot`) through the emulator.

Reply latency is measured at the emulator: from the moment it holds the citizen's update to the moment it
receives the bot's first sendMessage (or edit) in that chat. Each citizen waits for the answer and then at least
GAP_S before writing again, so no chat exceeds Telegram's 1 message/s or the bot's flood guard.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    RASA_TOKEN,
    BotProcess,
    database,
    note,
    percentile,
    print_profile,
    quick,
    quiet,
    scale,
    start_emulator,
)
from nlu.server import RasaServer, start_rasa
from sandbox.telegram.server import TelegramEmulator
from sandbox.telegram.world import BotState

NAME = "conversation"
GAP_S = 4.0  # the flood guard allows 20 messages a minute per citizen
REPLY_TIMEOUT_S = 10.0
FIRST_UID = 700_000_000
GREETINGS = ["xin chào", "chào bạn", "hello", "chao ban", "alo"]
QUESTIONS = [
    "làm sao kích hoạt tài khoản định danh điện tử mức 2",
    "quên mật khẩu vneid",
    "không nhận được mã otp",
    "làm hộ chiếu cần giấy tờ gì",
    "lệ phí cấp phiếu lý lịch tư pháp bao nhiêu",
    "đăng ký khai sinh online thế nào",
    "dang ky tam tru o dau",
    "how do I activate my VNeID account",
    "doi bang lai xe",
]


@dataclass
class Citizen:
    uid: int
    last_at: float = 0.0
    started: bool = False


@dataclass
class Step:
    target_rps: float
    duration_s: float
    latencies: list[float] = field(default_factory=list)
    timeouts: int = 0
    unanswered: list[str] = field(default_factory=list)  # what the citizen sent that got no answer
    skipped: int = 0  # no citizen was free to write: the bot is too far behind
    sent: int = 0
    elapsed_s: float = 0.0
    bot_cpu_s: float = 0.0  # CPU the bot process used during the step, user + system

    @property
    def cpu_ms_per_update(self) -> float:
        return self.bot_cpu_s / self.sent * 1000 if self.sent else math.nan

    @property
    def achieved_rps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def p99_s(self) -> float:
        values = self.latencies + [REPLY_TIMEOUT_S] * self.timeouts
        return percentile(values, 99)

    def passed(self) -> bool:
        return self.p99_s < 1.0 and self.timeouts == 0 and self.achieved_rps >= 0.95 * self.target_rps


def _callback_buttons(state: BotState, uid: int) -> tuple[int, str] | None:
    """A callback button of the newest bot message with any: what a citizen would press next."""
    chat = state.chats[uid]
    for rec in reversed(chat.messages.values()):
        if rec.sender_id != state.info.id or not rec.markup or rec.deleted:
            continue
        rows = json.loads(rec.markup).get("inline_keyboard") or []
        datas = [b["callback_data"] for row in rows for b in row if "callback_data" in b]
        if datas:
            return rec.message_id, random.choice(datas)
        return None
    return None


async def _act(state: BotState, c: Citizen, step: Step) -> None:
    """One update from one citizen, then the wait for the bot's first answer to it."""
    chat = state.chats[c.uid]
    cursor = chat.cursor
    press = _callback_buttons(state, c.uid) if c.started and random.random() < 0.3 else None
    if press is not None:
        state.press(c.uid, None, press[0], data=press[1])
        sent_at = time.time()
        what = f"press {press[1]}"
    else:
        if not c.started:
            text = "/start"
            c.started = True
        else:
            pick = random.random()
            text = random.choice(GREETINGS if pick < 0.3 else QUESTIONS) if pick < 0.9 else "/menu"
        rec, _chat, _uid = state.user_message(c.uid, None, text=text)
        sent_at = rec.received_at
        what = text
    step.sent += 1
    await state.wait_chat(chat, cursor + 1, REPLY_TIMEOUT_S)
    if chat.cursor <= cursor:
        step.timeouts += 1
        step.unanswered.append(f"{c.uid}: {what}")
        return
    events, _ = state.events_after(chat, cursor)
    first = events[0]
    replied_at = float(first["received_at"]) if first.get("event") == "new" else time.time()
    step.latencies.append(max(0.0, replied_at - sent_at))


async def _run_step(state: BotState, citizens: list[Citizen], step: Step) -> None:
    """Updates at `target_rps` for `duration_s`, each from a citizen who is not waiting and wrote > GAP_S ago."""
    idle: asyncio.Queue[Citizen] = asyncio.Queue()
    for c in citizens:
        idle.put_nowait(c)
    tasks: set[asyncio.Task[None]] = set()

    async def one(c: Citizen) -> None:
        try:
            await _act(state, c, step)
        finally:
            c.last_at = time.monotonic()
            idle.put_nowait(c)

    started = time.monotonic()
    n = 0
    while (now := time.monotonic()) - started < step.duration_s:
        due = started + n / step.target_rps
        if due > now:
            await asyncio.sleep(due - now)
        n += 1
        try:
            c = idle.get_nowait()
        except asyncio.QueueEmpty:
            step.skipped += 1
            continue
        if time.monotonic() - c.last_at < GAP_S:
            # The longest-idle citizen wrote too recently: more citizens are needed than there are free.
            idle.put_nowait(c)
            step.skipped += 1
            continue
        task = asyncio.get_running_loop().create_task(one(c))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    step.elapsed_s = time.monotonic() - started
    if tasks:
        await asyncio.wait(tasks, timeout=REPLY_TIMEOUT_S + 5)


async def _measured_step(state: BotState, citizens: list[Citizen], step: Step, bot: BotProcess) -> None:
    """A step, with the CPU the bot process spent on it (its answers to the step's updates included)."""
    before = bot.cpu_s()
    await _run_step(state, citizens, step)
    step.bot_cpu_s = bot.cpu_s() - before


async def run() -> dict[str, float]:
    quiet()
    rates = [40.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0, 250.0, 300.0]  # the 20/s baseline is the first step
    baseline_s = scale(60.0, 20.0)
    step_s = scale(60.0, 10.0)
    if quick():
        rates = rates[:4]
    users = math.ceil(max(rates) * (GAP_S + 1.0) * 1.3)
    note(NAME, "starting the Rasa NLU server…")
    t0 = time.monotonic()
    # BENCH_NLU_MODEL=models/nlu-<hash>.tar.gz: another model than config.yml's (to compare two pipelines'
    # cost in one sitting; docs/benchmarks.md)
    model = os.environ.get("BENCH_NLU_MODEL")
    rasa: RasaServer = await asyncio.to_thread(start_rasa, RASA_TOKEN, None, Path(model) if model else None)
    note(NAME, f"Rasa ready in {time.monotonic() - t0:.0f} s")
    # Conversational replies are not bound by Telegram's 30 msg/s bulk limit; per-chat limits stay on.
    emulator: TelegramEmulator = await start_emulator(global_rate=100_000.0)
    state = emulator.bot()
    citizens = [Citizen(FIRST_UID + i) for i in range(users)]
    for c in citizens:
        state.create_user(c.uid, first_name="Dân", language_code="vi")
    results: dict[str, float] = {}
    try:
        async with database(NAME) as url:
            bot = BotProcess(emulator, url, NAME, RASA_URL=rasa.url)
            await bot.start()
            try:
                note(NAME, f"{users} citizens; warming up (every citizen says /start once)")
                # At the baseline rate, so that the measured steps do not start behind a backlog.
                warm = Step(target_rps=20.0, duration_s=len(citizens) / 20.0)
                await _run_step(state, citizens, warm)
                await asyncio.sleep(5)
                for c in citizens:
                    c.last_at = 0.0
                base = Step(20.0, baseline_s)
                await _measured_step(state, citizens, base, bot)
                note(
                    NAME,
                    f"20/s for {baseline_s:.0f} s: {base.sent} updates, p50 {percentile(base.latencies, 50) * 1000:.1f}"
                    f" ms, p99 {base.p99_s * 1000:.1f} ms, {base.timeouts} unanswered, bot CPU "
                    f"{base.cpu_ms_per_update:.1f} ms per update",
                )
                results["bot_reply_p50_ms"] = round(percentile(base.latencies, 50) * 1000, 1)
                results["bot_reply_p99_ms"] = round(base.p99_s * 1000, 1)
                results["bot_cpu_ms_per_update"] = round(base.cpu_ms_per_update, 2)
                best = 20.0 if base.passed() else 0.0
                for rate in rates if best else []:
                    await asyncio.sleep(3)  # let the previous step drain
                    step = Step(rate, step_s)
                    await _measured_step(state, citizens, step, bot)
                    verdict = "ok" if step.passed() else "FAILED"
                    note(
                        NAME,
                        f"{rate:.0f}/s for {step_s:.0f} s: achieved {step.achieved_rps:.1f}/s, p50 "
                        f"{percentile(step.latencies, 50) * 1000:.0f} ms, p99 {step.p99_s * 1000:.0f} ms, "
                        f"{step.timeouts} unanswered, {step.skipped} skipped, bot CPU "
                        f"{step.cpu_ms_per_update:.1f} ms per update — {verdict}",
                    )
                    if step.unanswered:
                        note(NAME, "unanswered: " + "; ".join(step.unanswered[:10]))
                    if not step.passed():
                        break
                    best = rate
                results["bot_max_updates_per_s"] = best
                counts = state.counters
                note(
                    NAME,
                    f"emulator: {counts['updates_created']} updates created, {counts['updates_delivered']} delivered, "
                    f"{counts['messages_sent']} messages sent, {counts['edits']} edits, {counts['rate_limited']} × 429",
                )
            finally:
                await bot.astop()
            print_profile(NAME, bot.profile)
    finally:
        await emulator.stop()
        await asyncio.to_thread(rasa.stop)
    return results
