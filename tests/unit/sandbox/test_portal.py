"""The portal emulator keeps to docs/portal-api.yaml, and its /_sandbox/ controls and CLI work over HTTP."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sandbox.portal.server import PortalEmulator, public_wire, to_wire

ROOT = Path(__file__).resolve().parents[3]
SPEC = yaml.safe_load((ROOT / "docs" / "portal-api.yaml").read_text(encoding="utf-8"))
SCHEMAS = SPEC["components"]["schemas"]
CODE = "000.00.12.H22-240101-0003"


@pytest.fixture
async def emu() -> AsyncIterator[PortalEmulator]:
    emulator = PortalEmulator()
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http(emu: PortalEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.base_url, timeout=5) as client:
        yield client


async def bearer(http: httpx.AsyncClient) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": "citizen-assistant", "client_secret": "change-me"}
    answer = await http.post("/oauth/token", data=form)
    assert answer.status_code == 200
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def check_against(schema: dict[str, Any], obj: dict[str, Any], where: str) -> None:
    properties = schema["properties"]
    assert set(schema.get("required", [])) <= set(obj), where
    assert set(obj) <= set(properties), f"{where}: fields not in the contract: {set(obj) - set(properties)}"
    for key, value in obj.items():
        prop = properties[key]
        if value is None:
            assert prop.get("nullable"), f"{where}.{key} is null but not nullable"
        elif prop.get("format") == "date-time":
            assert value.endswith("+07:00"), f"{where}.{key} = {value} lacks the +07:00 offset"


def test_every_seeded_dossier_matches_the_contract(emu: PortalEmulator) -> None:
    statuses = set()
    for code in emu.codes():
        public = public_wire(emu.dossier(code))
        check_against(SCHEMAS["Dossier"], public, code)
        assert set(public) == {"code", "procedure_name", "status", "access"}  # nothing personal for a bare code
        wire = to_wire(emu.dossier(code), emu.dossier_key(code))
        check_against(SCHEMAS["Dossier"], wire, code)
        check_against(SCHEMAS["Dossier"]["properties"]["status"], wire["status"], f"{code}.status")
        for i, entry in enumerate(wire["history"]):
            check_against(SCHEMAS["HistoryEntry"], entry, f"{code}.history[{i}]")
        if wire["supplement"] is not None:
            check_against(SCHEMAS["Supplement"], wire["supplement"], f"{code}.supplement")
        if wire["fee"] is not None:
            check_against(SCHEMAS["Fee"], wire["fee"], f"{code}.fee")
        statuses.add(wire["status"]["code"])
    assert statuses == set(range(1, 11))  # the seed covers every status


async def test_token_endpoint_like_keycloak(http: httpx.AsyncClient, emu: PortalEmulator) -> None:
    ok = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("citizen-assistant", "change-me")
    )
    assert ok.status_code == 200
    token = ok.json()
    assert (token["token_type"], token["expires_in"]) == ("Bearer", emu.token_ttl_s)
    check_against(SCHEMAS["Token"], token, "token")
    wrong = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "citizen-assistant", "client_secret": "nope"},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized_client")
    grant = await http.post("/oauth/token", data={"grant_type": "password"})
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")


async def test_error_answers(http: httpx.AsyncClient, emu: PortalEmulator) -> None:
    missing = await http.get(f"/dossiers/{CODE}")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert missing.json()["error"] == "invalid_token"
    headers = await bearer(http)
    unknown = await http.get("/dossiers/000.00.12.H22-240101-9999", headers=headers)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    emu.rate_limit(retry_after_s=3)
    limited = await http.get(f"/dossiers/{CODE}", headers=headers)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 200  # count=1 by default
    emu.expire_tokens()
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 401


async def test_control_endpoints(http: httpx.AsyncClient, emu: PortalEmulator) -> None:
    headers = await bearer(http)
    new = {
        "code": "000.00.12.H22-250301-0001",
        "procedure": "Đăng ký khai sinh",
        "applicant": "Mai Thị Lan",
        "phone": "0987654321",
        "agency": "UBND phường Hòa Bình",
        "history": [{"status": 1, "time": "2025-03-01T08:00:00+07:00"}],
    }
    assert (await http.post("/_sandbox/dossiers", json=new)).status_code == 201
    got = await http.get(f"/dossiers/{new['code']}", headers=headers)
    assert (got.status_code, got.json()["status"]["code"]) == (200, 1)

    supplement = {"items": ["Bản sao giấy chứng sinh"], "deadline": "2025-03-05T17:00:00+07:00"}
    changed = await http.post(
        f"/_sandbox/dossiers/{new['code']}/status", json={"status": 5, "note": "Thiếu giấy", "supplement": supplement}
    )
    assert changed.status_code == 200
    full = {**headers, "X-Applicant-Phone-Last4": "4321"}
    body = (await http.get(f"/dossiers/{new['code']}", headers=full)).json()
    assert body["status"]["code"] == 5
    assert body["supplement"]["items"] == ["Bản sao giấy chứng sinh"]
    assert [h["status"] for h in body["history"]] == [1, 5]

    advanced = await http.post(f"/_sandbox/dossiers/{new['code']}/advance")
    assert advanced.json() == {"status": 4}
    body = (await http.get(f"/dossiers/{new['code']}", headers=full)).json()
    assert body["supplement"] is None  # a supplement request ends when processing resumes
    final = await http.post("/_sandbox/dossiers/000.00.12.H22-240801-0020/advance")
    assert final.status_code == 409
    assert (await http.post("/_sandbox/dossiers/000.00.12.H22-240101-9999/advance")).status_code == 404

    fault = await http.post("/_sandbox/faults", json={"kind": "error", "status": 502, "count": 1})
    assert fault.status_code == 201
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 502
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 200
    assert (await http.post("/_sandbox/faults", json={"kind": "explode"})).status_code == 400
    await http.post("/_sandbox/faults", json={"kind": "error"})
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 503
    assert (await http.delete("/_sandbox/faults")).status_code == 200
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 200

    await http.post("/_sandbox/tokens/expire")
    assert (await http.get(f"/dossiers/{CODE}", headers=headers)).status_code == 401

    stats = (await http.get("/_sandbox/stats")).json()
    assert stats["totals"] == {"token": 1, "dossiers": emu.count("dossiers")}
    assert sum(stats["per_second"]["dossiers"].values()) == emu.count("dossiers")
    assert stats["max_per_second"]["dossiers"] >= 1

    await http.post("/_sandbox/reset")
    assert new["code"] not in emu.codes()
    assert emu.count("dossiers") == 0


async def test_hung_requests_do_not_hold_up_stop() -> None:
    emu = PortalEmulator()
    await emu.start()
    emu.hang()
    async with httpx.AsyncClient(base_url=emu.base_url) as http:
        request = asyncio.create_task(http.get(f"/dossiers/{CODE}"))
        async with asyncio.timeout(5):
            await emu.wait_for_count(1)  # the request is being held
        await asyncio.wait_for(emu.stop(), timeout=2)
        answer = await request
    assert answer.status_code == 503


async def test_command_line_entry_point() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.portal",
        "--port",
        str(port),
        "--token-ttl",
        "60",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        assert f"http://127.0.0.1:{port}" in banner.decode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            token = (
                await http.post(
                    "/oauth/token", data={"grant_type": "client_credentials"}, auth=("citizen-assistant", "change-me")
                )
            ).json()
            assert token["expires_in"] == 60
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0


async def test_a_bare_code_gets_the_public_view_and_the_phone_digits_the_full_one(
    http: httpx.AsyncClient, emu: PortalEmulator
) -> None:
    headers = await bearer(http)
    public = (await http.get(f"/dossiers/{CODE}", headers=headers)).json()
    assert public == {
        "code": CODE,
        "procedure_name": "Đăng ký thường trú",
        "access": "public",
        "status": {"code": 4, "name": "Đang xử lý"},
    }
    digits = emu.phone_last4(CODE)
    full = await http.get(f"/dossiers/{CODE}", headers={**headers, "X-Applicant-Phone-Last4": digits})
    assert full.status_code == 200
    body = full.json()
    assert (body["access"], body["applicant_name"], body["dossier_key"]) == (
        "full",
        "Nguyễn Văn An",
        emu.dossier_key(CODE),
    )
    wrong = "0000" if digits != "0000" else "1111"
    refused = await http.get(f"/dossiers/{CODE}", headers={**headers, "X-Applicant-Phone-Last4": wrong})
    assert (refused.status_code, refused.json()["error"]) == (403, "verification_failed")
    assert "applicant_name" not in refused.text and "Nguyễn" not in refused.text
    by_key = await http.get(f"/dossiers/{CODE}", headers={**headers, "X-Dossier-Key": body["dossier_key"]})
    assert by_key.json()["access"] == "full"
    other = emu.codes()[1]
    stolen = await http.get(f"/dossiers/{other}", headers={**headers, "X-Dossier-Key": body["dossier_key"]})
    assert stolen.status_code == 403  # a key opens only its own dossier
    assert emu.verifications == {"ok": 2, "failed": 2}
