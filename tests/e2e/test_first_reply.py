"""The first-reply regression: ordinary typed questions (tests/support/data/first_reply.yml, three styles) are
answered in the first reply — the figure, the guide step, or the confirmation an action needs — not with a menu. One
real Rasa server and one bot for all of them, through the same machinery as `make ask`."""

from __future__ import annotations

from nlu.server import RasaServer
from tests.support.base import RASA_TOKEN
from tests.support.first_reply import load_cases, missing
from tools.ask import Asker

TARGET = 0.90


async def test_ordinary_questions_are_answered_in_the_first_reply(rasa: RasaServer) -> None:
    cases = load_cases()
    assert len(cases) >= 150
    misses = []
    async with Asker(rasa_url=rasa.url, rasa_token=RASA_TOKEN) as asker:
        for case in cases:
            answer = await asker.ask(case.question, case.lang)
            lacking = missing(case, answer)
            if lacking:
                first = answer["replies"][0]["text"][:120] if answer["replies"] else "(no reply)"
                misses.append(
                    f"{case.topic}/{case.style} {case.question!r} ({answer['intent']}): lacks {lacking}; got {first!r}"
                )
    rate = 1 - len(misses) / len(cases)
    print(f"\nfirst-reply answer rate: {rate:.1%} ({len(cases) - len(misses)}/{len(cases)})")
    for miss in misses:
        print("  miss:", miss)
    assert rate >= TARGET, "\n".join(misses)
