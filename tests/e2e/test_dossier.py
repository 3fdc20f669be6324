"""End to end, dossier status: the assembled bot, the real Rasa server, the Telegram and portal emulators over
HTTP. Lookups in every status, bad and unknown codes, asking for a code, the portal's token expiring, the portal
down, slow or garbled (breaker included), follow notices exactly once across a restart, deep links, the follow
limit."""

from __future__ import annotations

import asyncio
import html
import re
import time

from sqlalchemy import select

from actions.dossier import encode_start_payload, mask_name
from kernel.content import Content
from nlu.server import RasaServer
from sandbox.portal.server import PortalEmulator, load_seed
from sandbox.telegram.client import SandboxClient, SimMessage, SimUser
from store.db import unit_of_work
from store.models import User
from store.models_dossier import DossierFollow
from tests.support.bots import BotRunner, portal_settings

PROCESSING = "000.00.12.H22-240101-0003"  # status 4 in the seed
RECEIVED = "000.00.12.H22-240103-0002"  # status 2
NEW = "000.00.12.H22-240102-0001"  # status 1
CONTENT = Content.load()
DIGITS = {d.code: d.phone[-4:] for d in load_seed().dossiers}  # the last 4 digits of each applicant's phone

# One seed dossier per status, each looked up with another way of asking (with and without diacritics).
BY_STATUS = [
    (1, NEW, "tra cứu hồ sơ {code}"),
    (2, RECEIVED, "kiểm tra tình trạng hồ sơ {code}"),
    (3, "000.00.12.H22-240104-0004", "tra cuu ho so {code}"),
    (4, PROCESSING, "hồ sơ {code} đến đâu rồi"),
    (5, "H22.38-240615-0001", "cho mình xem trạng thái hồ sơ {code}"),
    (6, "000.00.15.H22-240620-0007", "kiem tra ho so {code}"),
    (7, "000.00.12.H22-240701-0012", "tra cứu hồ sơ mã {code}"),
    (8, "000.00.12.H22-240705-0009", "hồ sơ {code} của tôi thế nào rồi"),
    (9, "38.98.H29-210519-0013", "tình trạng hồ sơ {code}"),
    (10, "000.00.12.H22-240801-0020", "tra cứu hồ sơ {code} giúp mình"),
]


def plain(message: SimMessage) -> str:
    """What the citizen reads: the text without its HTML tags or entities."""
    return html.unescape(re.sub(r"<[^>]+>", "", message.body))


def vi(key: str, **values: object) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", CONTENT.text(f"dossier.{key}", "vi", **values)))


async def one(user: SimUser, wait_s: float = 15) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    return msg


async def ask(user: SimUser, text: str, wait_s: float = 15) -> SimMessage:
    await user.send(text)
    return await one(user, wait_s)


async def unlock(user: SimUser, card: SimMessage, code: str, label: str = "🔑 Xem chi tiết và theo dõi") -> SimMessage:
    """Press [Details and follow] under a public card and type the applicant's phone digits: the full card."""
    await user.press(card, label)
    assert "4" in plain(await one(user))
    return await ask(user, DIGITS[code])


async def follow(user: SimUser, code: str) -> str:
    card = await unlock(user, await ask(user, f"tra cứu hồ sơ {code}"), code)
    await user.press(card, "🔔 Theo dõi hồ sơ này")
    answer = plain(await one(user))
    # Four messages went to this chat just now; Telegram takes about one a second per chat, so a change notice
    # sent at once would be throttled (429) and the poller would try it again only a minute later.
    await asyncio.sleep(1.5)
    return answer


async def test_a_lookup_by_sentence_in_every_status_shows_its_label_and_next_step_with_the_name_masked(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    an = await sandbox.user(5001, first_name="An", language_code="vi")
    for status, code, sentence in BY_STATUS:
        assert portal.dossier(code).status == status  # the seed still has one dossier per status
        public = await ask(an, sentence.format(code=code))
        assert code in plain(public) and vi(f"status_{status}") in plain(public), sentence
        assert vi(f"next_{status}") not in plain(public) and "Người nộp" not in plain(public), sentence
        card = plain(await unlock(an, public, code))
        assert code in card, sentence
        assert vi(f"status_{status}") in card, sentence
        assert vi(f"next_{status}") in card, sentence
        name = portal.dossier(code).applicant
        assert mask_name(name) in card and name not in card, sentence
    # Status 5 lists what is missing; status 6 what is owed.
    assert portal.count() == 2 * len(BY_STATUS)  # the public view, then the full one


async def test_an_english_speaker_gets_the_card_in_english(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    oanh = await sandbox.user(5013, first_name="Oanh", language_code="en")
    public = await ask(oanh, f"what is the status of my dossier {PROCESSING}")
    card = plain(await unlock(oanh, public, PROCESSING, "🔑 Details and follow"))
    english = [CONTENT.text(f"dossier.{key}", "en") for key in ("status_4", "next_4")]
    assert all(line in card for line in english) and "N*** V** A" in card and "Nguyễn Văn An" not in card


async def test_a_malformed_code_is_explained_and_an_unknown_one_is_not_found(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    binh = await sandbox.user(5002, first_name="Bình", language_code="vi")
    bad = plain(await ask(binh, "tra cứu hồ sơ 000.00.12.H22-2401-03"))
    assert "Giấy tiếp nhận hồ sơ và hẹn trả kết quả" in bad and "000.00.12.H22-240101-0003" in bad
    assert portal.count() == 0  # nothing worth asking the portal
    unknown = "000.00.12.H22-240101-0999"
    missing = await ask(binh, f"tra cứu hồ sơ {unknown}")
    assert "không tìm thấy" in plain(missing) and unknown in plain(missing)
    assert "🔎 Tra cứu hồ sơ khác" in missing.labels
    assert portal.count() == 1


async def test_where_is_my_dossier_asks_for_the_code_and_offers_the_followed_ones(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    cuong = await sandbox.user(5003, first_name="Cường", language_code="vi")
    first = await ask(cuong, "hồ sơ của tôi đến đâu rồi")
    assert "mã hồ sơ" in plain(first) and first.labels == []  # nothing followed yet: just the question
    card = await ask(cuong, PROCESSING)  # the typed answer is read as the code asked for
    assert vi("status_4") in plain(card)
    card = await unlock(cuong, card, PROCESSING)
    await cuong.press(card, "🔔 Theo dõi hồ sơ này")
    await one(cuong)
    assert "Đã theo dõi" in await follow(cuong, RECEIVED)

    again = await ask(cuong, "hồ sơ của tôi đến đâu rồi")
    assert "mã hồ sơ" in plain(again) and vi("ask_code_followed") in plain(again)
    assert again.labels == [f"{PROCESSING} · {vi('status_4')}", f"{RECEIVED} · {vi('status_2')}"]
    await cuong.press(again, f"{RECEIVED} · {vi('status_2')}")
    picked = plain(await one(cuong))
    assert RECEIVED in picked and vi("status_2") in picked and vi("card_following") in picked


async def test_an_expired_portal_token_is_refreshed_once_and_the_citizen_notices_nothing(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    dung = await sandbox.user(5004, first_name="Dũng", language_code="vi")
    assert vi("status_4") in plain(await ask(dung, f"tra cứu hồ sơ {PROCESSING}"))
    assert (portal.count("token"), portal.count()) == (1, 1)
    portal.expire_tokens()  # the identity server restarted: the bot's cached token is now refused
    card = plain(await ask(dung, f"tra cứu hồ sơ {RECEIVED}"))
    assert vi("status_2") in card and RECEIVED in card
    # One 401, one new token, one retry; no second refresh.
    assert (portal.count("token"), portal.count()) == (2, 3)


async def test_a_dead_portal_answers_fast_opens_the_breaker_and_recovers_by_itself(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    reset_s = 2.0
    runtime = await bots.start(db_url, rasa_url=rasa.url, portal_breaker_reset_s=reset_s, **portal_settings(portal))
    em = await sandbox.user(5005, first_name="Em", language_code="vi")
    portal.fail(503)  # every dossier request fails until cleared
    started = time.monotonic()
    down = plain(await ask(em, f"tra cứu hồ sơ {PROCESSING}"))
    first_s = time.monotonic() - started
    assert vi("portal_down") in down
    assert first_s < runtime.settings.portal_deadline_s / 2, first_s  # retries, but well inside the deadline
    tried = portal.count()
    assert tried == 3  # three attempts, then the breaker opened

    started = time.monotonic()
    assert vi("portal_down") in plain(await ask(em, f"tra cứu hồ sơ {RECEIVED}"))
    open_s = time.monotonic() - started
    assert portal.count() == tried  # the open breaker answered without asking the portal
    print(f"portal down: first answer {first_s:.2f} s, with the breaker open {open_s:.2f} s")

    portal.clear_faults()  # the portal is back; the breaker lets a probe through after its reset time
    deadline = time.monotonic() + reset_s + 10
    while True:
        card = plain(await ask(em, f"tra cứu hồ sơ {RECEIVED}"))
        if vi("status_2") in card:
            break
        assert vi("portal_down") in card and portal.count() == tried  # still open, still not asked
        assert time.monotonic() < deadline, "the breaker did not close again"
        await asyncio.sleep(0.5)
    assert portal.count() == tried + 1


async def test_a_throttling_portal_is_waited_on_as_it_asks_and_the_citizen_gets_the_card(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    kim = await sandbox.user(5008, first_name="Kim", language_code="vi")
    portal.rate_limit(retry_after_s=1, count=2)  # two 429s with Retry-After: 1, then the answer
    started = time.monotonic()
    card = plain(await ask(kim, f"tra cứu hồ sơ {PROCESSING}"))
    elapsed = time.monotonic() - started
    assert vi("status_4") in card and vi("portal_down") not in card
    assert portal.count() == 3  # asked again only after each Retry-After, not hammered
    assert 2.0 <= elapsed < 8.0, elapsed  # it waited the two seconds it was told to, inside the deadline
    print(f"portal throttling (2 × 429, Retry-After 1): card after {elapsed:.2f} s and {portal.count()} requests")

    portal.rate_limit(retry_after_s=30, count=1)  # asked to wait longer than the citizen's deadline
    started = time.monotonic()
    busy = plain(await ask(kim, f"tra cứu hồ sơ {PROCESSING}"))
    assert vi("portal_down") in busy and time.monotonic() - started < 3.0  # told at once, not after 30 s
    portal.clear_faults()


async def test_a_portal_slower_than_the_read_timeout_gets_the_not_answering_reply(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, portal_read_timeout_s=0.4, **portal_settings(portal))
    giang = await sandbox.user(5006, first_name="Giang", language_code="vi")
    portal.slow(5.0)
    started = time.monotonic()
    reply = plain(await ask(giang, f"tra cứu hồ sơ {PROCESSING}"))
    elapsed = time.monotonic() - started
    assert vi("portal_down") in reply
    assert elapsed < 4.0, elapsed  # three 0.4 s attempts and their backoff, not the portal's 5 s
    print(f"portal slower than the read timeout: answered in {elapsed:.2f} s after {portal.count()} attempts")
    portal.clear_faults()


async def test_a_malformed_portal_answer_gets_the_portal_error_reply_and_the_bot_carries_on(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    hai = await sandbox.user(5007, first_name="Hải", language_code="vi")
    portal.malformed(count=1, variant="truncated")
    assert vi("portal_error") in plain(await ask(hai, f"tra cứu hồ sơ {PROCESSING}"))
    portal.malformed(count=1, variant="schema")
    schema = plain(await ask(hai, f"tra cứu hồ sơ {PROCESSING}"))
    assert vi("portal_error") in schema and "Nguyễn Văn An" not in schema
    assert vi("status_4") in plain(await ask(hai, f"tra cứu hồ sơ {PROCESSING}"))


async def _poll_until(portal: PortalEmulator, requests: int, timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        await portal.wait_for_count(requests)


async def test_a_followed_dossier_is_announced_exactly_once_per_change_also_across_a_restart(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    fast_polls = {"portal_poll_interval_s": 1.0, "portal_poll_run_s": 0.5, **portal_settings(portal)}
    first = await bots.start(db_url, rasa_url=rasa.url, **fast_polls)
    kim = await sandbox.user(5008, first_name="Kim", language_code="vi")
    assert "Đã theo dõi" in await follow(kim, NEW)
    portal.advance(NEW)  # 1 → 2
    notice = plain(await one(kim, wait_s=20))
    assert NEW in notice and vi("status_2") in notice
    # Several more polls of the unchanged dossier: no second notice.
    await _poll_until(portal, portal.count() + 3)
    assert await kim.read() == []

    await bots.stop(first)
    portal.advance(NEW)  # 2 → 4 while no bot runs
    polled = portal.count()
    await bots.start(db_url, rasa_url=rasa.url, **fast_polls)
    notice = plain(await one(kim, wait_s=20))
    assert NEW in notice and vi("status_4") in notice
    await _poll_until(portal, polled + 4)
    assert await kim.read() == []  # the change was announced once, not on every poll after the restart


async def test_a_citizen_who_blocked_the_bot_is_marked_inactive_and_gets_the_change_once_back(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    runtime = await bots.start(
        db_url, rasa_url=rasa.url, portal_poll_interval_s=1.0, portal_poll_run_s=0.5, **portal_settings(portal)
    )
    lan = await sandbox.user(5012, first_name="Lan", language_code="vi")
    assert "Đã theo dõi" in await follow(lan, NEW)
    await lan.block()
    portal.advance(NEW)  # 1 → 2: the notice cannot be delivered

    async def inactive() -> bool:
        async with unit_of_work(runtime.sessions) as s:
            user = await s.get(User, 5012)
            return user is not None and not user.active

    deadline = time.monotonic() + 20
    while not await inactive():  # the poller marks them in the run that failed to deliver
        assert time.monotonic() < deadline, "the blocked citizen was never marked inactive"
        await asyncio.sleep(0.1)
    await lan.unblock()
    await lan.command("menu")  # writing again makes the citizen active again
    # The menu answers the command; the notice comes from the poller's next run: either may arrive first.
    arrived = await lan.wait_for(count=2, timeout=20)
    [notice] = [m for m in arrived if NEW in plain(m)]
    [menu] = [m for m in arrived if m is not notice]
    assert menu.labels and vi("status_2") in plain(notice)


async def test_a_deep_link_opens_the_dossier_and_a_broken_one_is_explained(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, **portal_settings(portal))
    long = await sandbox.user(5009, first_name="Long", language_code="vi")
    payload = encode_start_payload(RECEIVED)
    assert payload == "dossier_000_00_12_H22-240103-0002"
    await long.command("start", payload)
    [hello, card_msg] = await long.wait_for(count=2, timeout=15)  # a first visit: who we are, what we keep
    assert "Xin chào Long" in plain(hello) and "/privacy" in plain(hello)
    card = plain(card_msg)
    assert RECEIVED in card and vi("status_2") in card
    await long.command("start", "dossier_000_00_12_H22-2401")  # no longer new: the answer alone
    assert "Giấy tiếp nhận hồ sơ và hẹn trả kết quả" in plain(await one(long))


async def test_following_stops_at_the_limit_per_citizen(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url, dossier_max_follows=2, **portal_settings(portal))
    minh = await sandbox.user(5010, first_name="Minh", language_code="vi")
    other = await sandbox.user(5011, first_name="Nam", language_code="vi")
    for code in (NEW, RECEIVED):
        assert "Đã theo dõi" in await follow(minh, code)
    assert await follow(minh, PROCESSING) == vi("follow_limit", limit=2)
    # The limit is per citizen: another one still may follow the same dossier.
    assert "Đã theo dõi" in await follow(other, PROCESSING)
    async with unit_of_work(runtime.sessions) as s:
        rows = (await s.execute(select(DossierFollow.user_id, DossierFollow.code))).tuples().all()
    assert sorted(rows) == sorted([(5010, NEW), (5010, RECEIVED), (5011, PROCESSING)])


async def test_a_citizen_trying_sequential_codes_is_stopped_at_the_quota_and_wrong_digits_show_nothing(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, dossier_lookups_per_hour=5, **portal_settings(portal))
    quan = await sandbox.user(5014, first_name="Quân", language_code="vi")
    answers = [plain(await ask(quan, f"tra cứu hồ sơ 000.00.12.H22-240101-{n:04d}")) for n in range(1, 9)]
    assert portal.count() == 5
    assert answers[5:] == [vi("quota", limit=5)] * 3
    assert vi("status_4") in answers[2] and "Nguyễn" not in answers[2] and "N***" not in answers[2]
    # The dossier it found: the wrong phone digits show nothing more, and three of them lock it.
    card = await ask(quan, f"tra cứu hồ sơ {PROCESSING}")  # looked up before: not a new code
    await quan.press(card, "🔑 Xem chi tiết và theo dõi")
    await one(quan)
    wrong = "0000" if DIGITS[PROCESSING] != "0000" else "1111"
    for left in (2, 1):
        assert plain(await ask(quan, wrong)) == vi("verify_wrong", left=left)
    assert plain(await ask(quan, wrong)) == vi("verify_locked", code=PROCESSING, minutes=30)
    assert portal.verifications == {"failed": 3}
