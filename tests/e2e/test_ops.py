"""Operations endpoints of the running bot: /livez answers while the process does, /readyz (and /healthz) follow
the database and the NLU server, /metrics counts
updates, NLU latency, the review queue, Bot API calls (429s included) and the queues in the database."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from nlu.server import RasaServer, free_port
from sandbox.telegram.client import SandboxClient, SimMessage, SimUser
from tests.support.bots import BotRunner


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"http://127.0.0.1:{port}{path}")


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = (await get(port, "/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def one(user: SimUser) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=20)
    return msg


async def test_healthz_follows_the_database_and_the_nlu(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    port = free_port()
    runtime = await bots.start(db_url, rasa_url=rasa.url, health_port=port)
    ok = await get(port, "/healthz")
    assert (ok.status_code, ok.json()) == (200, {"database": True, "nlu": True})
    await bots.stop(runtime)
    port = free_port()
    await bots.start(db_url, health_port=port)  # nothing listens at the default NLU URL of the fixtures
    down = await get(port, "/healthz")
    assert (down.status_code, down.json()) == (503, {"database": True, "nlu": False})


async def test_liveness_holds_through_an_nlu_outage_readiness_does_not(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    port = free_port()
    await bots.start(db_url, health_port=port)  # nothing listens at the default NLU URL of the fixtures
    live = await get(port, "/livez")
    assert (live.status_code, live.json()) == (200, {"alive": True})  # no restart loop while Rasa is away
    ready = await get(port, "/readyz")
    assert (ready.status_code, ready.json()) == (503, {"database": True, "nlu": False})
    user = await sandbox.user(9101, first_name="An", language_code="vi")
    await user.command("menu")  # and the bot it keeps alive still answers its menus
    assert (await one(user)).buttons


async def test_metrics_count_what_the_bot_does(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    port = free_port()
    # A threshold no reading reaches: the gibberish below goes to the review queue whatever the model says.
    await bots.start(db_url, rasa_url=rasa.url, health_port=port, nlu_fallback_threshold=1.01)
    before = await scrape(port)
    user = await sandbox.user(9001, first_name="An", language_code="vi")
    await user.send("qwzx plorf")  # a fallback: into the review queue
    await one(user)
    await user.command("menu")
    await one(user)
    await sandbox.faults("sendMessage", retry_after=1)  # Telegram says 429 once; the rate limiter retries
    await user.command("help")
    await one(user)
    after = await scrape(port)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("assistant_updates_total", kind="text") == 1
    assert delta("assistant_updates_total", kind="command") == 2
    assert delta("assistant_nlu_seconds_count") == 1 and delta("assistant_nlu_seconds_sum") > 0
    added = sum(delta("assistant_review_queue_added_total", reason=r) for r in ("fallback", "ambiguous"))
    assert added == 1
    assert delta("assistant_telegram_calls_total", method="sendMessage", status="200") >= 3
    assert delta("assistant_telegram_calls_total", method="sendMessage", status="429") == 1
    assert value(after, "assistant_queue_depth", queue="review_queue") == 1
    assert value(after, "assistant_queue_depth", queue="reminders_pending") == 0
