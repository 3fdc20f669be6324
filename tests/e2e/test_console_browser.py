"""The staff console in a real browser (the system's chromium, driven by Playwright): signed in by the link the
bot sends through the Telegram emulator, the dashboard's charts, three review-queue messages labelled by keyboard
and found in the exported YAML, and the refusals. Screenshots of each page at laptop and phone size go to
var/screenshots/. Without chromium (or Playwright) these tests skip and say why."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, select

from console import auth
from core.settings import ROOT
from sandbox.telegram.client import SandboxClient
from store.db import unit_of_work
from store.models import NluReview
from store.models_staff import AuditEntry, StaffMember
from tests.support.bots import BotRunner
from tests.support.console import ADMIN_ID, ask_link, make_staff, seed_activity, seed_review, start_console_bot

SHOTS = ROOT / "var" / "screenshots"

try:
    from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect
except ImportError as exc:  # pragma: no cover - the dev requirements pin it
    pytest.skip(f"Playwright is not installed: {exc}", allow_module_level=True)


VIEWPORTS: dict[str, ViewportSize] = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    exe = chromium_path()
    if exe is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium); the console's browser tests need one")
    async with async_playwright() as pw:
        try:
            # --no-sandbox: CI and the build machines run as root, where chromium's sandbox refuses to start.
            b = await pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        except Exception as exc:
            pytest.skip(f"chromium at {exe} does not start: {exc}")
        yield b
        await b.close()


async def shoot(page: Page, name: str) -> None:
    """The page at laptop and phone width, whole length, under var/screenshots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in VIEWPORTS.items():
        await page.set_viewport_size(size)
        await page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(VIEWPORTS["laptop"])


async def sign_in(browser: Browser, link: str, shot: str | None = None) -> tuple[Any, Page]:
    context = await browser.new_context(viewport=VIEWPORTS["laptop"], locale="vi-VN")
    page = await context.new_page()
    await page.goto(link)
    if shot:
        await shoot(page, shot)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/")
    return context, page


async def test_dashboard_and_review_by_keyboard(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path, browser: Browser
) -> None:
    export_dir = tmp_path / "nlu"
    runtime, base = await start_console_bot(bots, db_url, export_dir)
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    now = dt.datetime.now(dt.UTC)
    await seed_activity(runtime, now)
    ids = await seed_review(runtime, now)

    link, _ = await ask_link(admin)
    assert link is not None
    context, page = await sign_in(browser, link, shot="signin")

    # The dashboard: its headline figures and five bar charts (conversations among them) drawn from the database.
    assert "Số liệu 30 ngày" in await page.locator("h1").inner_text()
    assert await page.locator("svg.chart").count() == 5
    assert await page.locator("svg.chart rect.bar").count() == 5 * 30
    assert await page.locator("#kpi-open b").inner_text() == "0"
    assert await page.locator("#kpi-reminders b").inner_text() == "40"
    assert "eid_activate" in await page.locator("#top-intents").inner_text()
    assert "Lịch" not in await page.locator("#broadcasts").inner_text()  # the audience is shown, never the text
    row = await page.locator("#broadcasts tr").nth(1).inner_text()
    assert row.split("\t")[-6:] == ["12", "9", "2", "1", "0", "0"]
    assert (await page.locator("#health").inner_text()).count("hoạt động") == 1  # the database; no NLU here
    await shoot(page, "dashboard")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="theo ngày").click()
    download = await download_info.value
    csv_text = (await asyncio.to_thread(Path(await download.path()).read_bytes)).decode()
    assert csv_text.startswith("day,messages,") and len(csv_text.splitlines()) == 31

    # The review queue by keyboard: 1 labels the first message with its best reading, j/k move, d dismisses.
    await page.get_by_role("link", name="Hàng chờ rà soát").click()
    await page.wait_for_url("**/review")
    assert await page.locator("#queue .item").count() == 4
    await shoot(page, "review")
    count = page.locator("#open-count")

    async def press(key: str, left: int) -> None:
        await page.keyboard.press(key)
        await expect(count).to_have_text(str(left))  # the server answered and the page moved on

    await press("1", 3)  # first message -> procedure_info; the next one is selected
    await page.keyboard.press("j")  # skip to the third
    await press("1", 2)  # third message -> eid_otp_problem; the fourth is selected
    await page.keyboard.press("k")  # back to the second
    await press("2", 1)  # second message -> its second reading, eid_info
    await press("d", 0)  # the fourth is dismissed
    assert await count.inner_text() == "0" and await page.locator("#labelled-count").inner_text() == "3"
    await page.get_by_role("button", name="Xuất ra YAML (data/nlu/)").click()
    await page.wait_for_selector("#flash")
    assert "Đã ghi 3 tin" in await page.locator("#flash").inner_text()
    await shoot(page, "review-exported")

    [written] = list(export_dir.glob("review_*.yml"))
    draft = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert {b["intent"]: b["examples"].splitlines() for b in draft["nlu"]} == {
        "procedure_info": ["- lam lai can cuoc bi mat o dau vay"],
        "eid_otp_problem": ["- so dien thoai [phone] khong nhan otp"],
        "eid_info": ["- tai app vneid cho may ba toi the nao"],
    }
    async with unit_of_work(runtime.sessions) as s:
        rows = {r.id: (r.status, r.label, r.decided_by) for r in (await s.scalars(select(NluReview))).all()}
        actions = sorted(e.action for e in (await s.scalars(select(AuditEntry))).all())
    assert [rows[i] for i in ids] == [
        ("exported", "procedure_info", ADMIN_ID),
        ("exported", "eid_info", ADMIN_ID),
        ("exported", "eid_otp_problem", ADMIN_ID),
        ("dismissed", None, ADMIN_ID),
    ]
    assert actions == sorted(["console.signin", *["console.review_label"] * 3, "console.review_dismiss",
                              "console.review_export"])  # fmt: skip

    # The admins' models page: the models on disk, the NLU server's state, the review queue's counts.
    await page.get_by_role("link", name="Mô hình NLU").click()
    await page.wait_for_url("**/models")
    assert "dismissed" in await page.locator("#review-counts").inner_text()
    await shoot(page, "models")

    # A POST from this signed-in browser without the CSRF token changes nothing.
    async with unit_of_work(runtime.sessions) as s:
        s.add(NluReview(text="mot tin moi", intent="nlu_fallback", confidence=0.2, ranking="[]", reason="fallback"))
    async with unit_of_work(runtime.sessions) as s:
        new_id = (await s.scalars(select(NluReview.id).where(NluReview.status == "open"))).one()
    refused = await page.request.post(f"{base}/review/{new_id}", form={"action": "dismiss"})
    assert refused.status == 403 and "CSRF" in await refused.text()
    async with unit_of_work(runtime.sessions) as s:
        assert (await s.get(NluReview, new_id)).status == "open"  # type: ignore[union-attr]
    await context.close()


async def test_refusals_in_the_browser(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path, browser: Browser
) -> None:
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu")
    clerk = await sandbox.user(7703, first_name="Cán bộ")
    citizen = await sandbox.user(7704, first_name="Dân")

    # Not staff: the bot answers /console as an unknown command and sends no link.
    link, body = await ask_link(citizen)
    assert link is None and "Mình không biết lệnh này" in body

    await make_staff(runtime, clerk.id)
    link, _ = await ask_link(clerk)
    assert link is not None
    context, page = await sign_in(browser, link)
    assert await page.locator("header .who").inner_text() == f"#{clerk.id} · cán bộ"

    # The same link again, in another browser: refused.
    other = await browser.new_context(viewport=VIEWPORTS["laptop"])
    replay = await other.new_page()
    response = await replay.goto(link)
    assert response is not None and response.status == 403
    assert "không còn hiệu lực" in await replay.locator("h1").inner_text()
    await shoot(replay, "link-refused")

    # A forged cookie (signed with another key): not signed in.
    forged, _ = auth.sign(b"not-the-console-secret-not-the-console-secret", ADMIN_ID, dt.datetime.now(dt.UTC), 1)
    await other.add_cookies([{"name": auth.COOKIE, "value": forged, "url": base}])
    response = await replay.goto(base + "/")
    assert response is not None and response.status == 401
    assert "chưa đăng nhập" in await replay.locator("h1").inner_text()
    await other.close()

    # Removed from the staff while signed in: the next page is refused.
    async with unit_of_work(runtime.sessions) as s:
        await s.execute(delete(StaffMember).where(StaffMember.user_id == clerk.id))
    response = await page.goto(base + "/review")
    assert response is not None and response.status == 403
    assert "không còn quyền cán bộ" in await page.locator("h1").inner_text()
    await shoot(page, "not-staff")
    await context.close()
