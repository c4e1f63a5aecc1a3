"""Sign-in with one-time codes over real SMTP, device tokens, revocation and invitations."""

import re

from fastapi.testclient import TestClient
from sqlmodel import select

from api.models import DeviceToken, LoginCode, Role
from api.testing import free_port
from tests import factories as f


def _code_from(message) -> str:
    return re.search(r"\b(\d{6})\b", message.get_body(("plain",)).get_content()).group(1)


def _sign_in(anon_client, who, inbox, device="Telefon"):
    assert anon_client.post("/auth/code", json={"email": who.email}).status_code == 202
    code = _code_from(inbox.messages[-1])
    return anon_client.post(
        "/auth/token", data={"username": who.email, "password": code, "client_id": device}
    )


def test_invite_then_sign_in_with_emailed_code(client, anon_client, session, inbox):
    ost = f.kommun(session)
    frosön = f.forening(session, ost)
    invited = client.post(
        "/users",
        json={
            "email": "Ny.Volontar@Example.org",
            "display_name": "Volontär på Frösön",
            "phone": "+46 70 123 45 67",
            "unit_id": frosön.id,
        },
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["role"] == "volunteer" and invited.json()["email"] == (
        "ny.volontar@example.org"
    )
    anon_client.headers.clear()
    asked = anon_client.post("/auth/code", json={"email": "ny.volontar@example.org"})
    assert asked.status_code == 202
    message = inbox.messages[-1]
    assert message["To"] == "ny.volontar@example.org"
    text = message.get_body(("plain",)).get_content()
    assert "Hej Volontär på Frösön!" in text and "Din inloggningskod till Knacka är" in text
    code = _code_from(message)
    token = anon_client.post(
        "/auth/token",
        data={"username": "ny.volontar@example.org", "password": code, "client_id": "Min mobil"},
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "bearer" and body["access_token"].startswith("kn_")
    me = anon_client.get("/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["display_name"] == "Volontär på Frösön"
    devices = anon_client.get(
        "/me/devices", headers={"Authorization": f"Bearer {body['access_token']}"}
    ).json()
    assert [(d["name"], d["revoked_at"]) for d in devices] == [("Min mobil", None)]
    stored = session.exec(select(DeviceToken).where(DeviceToken.id == body["device_id"])).one()
    assert body["access_token"] not in stored.token_hash and len(stored.token_hash) == 64
    assert code not in session.exec(select(LoginCode.code_hash)).first()


def test_unknown_address_gets_the_same_answer_and_no_email(anon_client, inbox):
    r = anon_client.post("/auth/code", json={"email": "okand@example.org"})
    assert r.status_code == 202 and inbox.messages == []
    bad = anon_client.post("/auth/code", json={"email": "inte-en-adress"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "email"]


def test_code_is_single_use_and_expires(anon_client, session, inbox, clock):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    first = _sign_in(anon_client, vol, inbox)
    assert first.status_code == 200
    code = _code_from(inbox.messages[-1])
    again = anon_client.post("/auth/token", data={"username": vol.email, "password": code})
    assert again.status_code == 400 and again.json()["detail"].startswith("code:")
    anon_client.post("/auth/code", json={"email": vol.email})
    late = _code_from(inbox.messages[-1])
    clock.advance(minutes=11)
    expired = anon_client.post("/auth/token", data={"username": vol.email, "password": late})
    assert expired.status_code == 400


def test_an_earlier_code_stays_valid_after_a_new_request(anon_client, session, inbox):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    anon_client.post("/auth/code", json={"email": vol.email})
    older = _code_from(inbox.messages[-1])
    anon_client.post("/auth/code", json={"email": vol.email})
    newer = _code_from(inbox.messages[-1])
    r = anon_client.post("/auth/token", data={"username": vol.email, "password": older})
    assert r.status_code == 200, r.text
    if older != newer:
        r = anon_client.post("/auth/token", data={"username": vol.email, "password": newer})
        assert r.status_code == 200, r.text
    again = anon_client.post("/auth/token", data={"username": vol.email, "password": newer})
    assert again.status_code == 400


def _from(anon_client, host: str) -> TestClient:
    """Another client address in front of the same app and transaction."""
    return TestClient(anon_client.app, client=(host, 50000))


def test_strangers_cannot_use_up_a_users_codes(anon_client, session, inbox, clock):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    stranger = _from(anon_client, "203.0.113.66")
    for _ in range(6):
        assert stranger.post("/auth/code", json={"email": vol.email}).status_code == 202
    assert len(inbox.to(vol.email)) == 5
    # The user, from their own phone, still gets a code, and signs in with it.
    r = _sign_in(_from(anon_client, "198.51.100.7"), vol, inbox)
    assert r.status_code == 200, r.text
    assert len(inbox.to(vol.email)) == 6


def test_code_requests_are_limited_per_client_and_per_address(
    anon_client, session, inbox, settings
):
    settings.login_codes_per_hour_per_client = 3
    settings.login_codes_per_hour_per_email = 4
    forening = f.forening(session, f.kommun(session))
    users = [f.user(session, Role.volunteer, forening) for _ in range(4)]
    one = _from(anon_client, "203.0.113.1")
    for u in users:
        assert one.post("/auth/code", json={"email": u.email}).status_code == 202
    assert [len(inbox.to(u.email)) for u in users] == [1, 1, 1, 0]
    many = [_from(anon_client, f"198.51.100.{i}") for i in range(5)]
    for c in many:
        assert c.post("/auth/code", json={"email": users[0].email}).status_code == 202
    assert len(inbox.to(users[0].email)) == 4
    stored = session.exec(select(LoginCode.client).where(LoginCode.user_id == users[0].id))
    assert set(stored) == {"203.0.113.1", "198.51.100.0", "198.51.100.1", "198.51.100.2"}


def test_wrong_guesses_spend_every_live_code(anon_client, session, inbox):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    codes = []
    for _ in range(2):
        anon_client.post("/auth/code", json={"email": vol.email})
        codes.append(_code_from(inbox.messages[-1]))
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in codes)
    for _ in range(5):
        r = anon_client.post("/auth/token", data={"username": vol.email, "password": wrong})
        assert r.status_code == 400
    for code in codes:
        r = anon_client.post("/auth/token", data={"username": vol.email, "password": code})
        assert r.status_code == 400


def test_code_requests_are_rate_limited(anon_client, session, inbox, clock):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    for _ in range(5):
        assert anon_client.post("/auth/code", json={"email": vol.email}).status_code == 202
    limited = anon_client.post("/auth/code", json={"email": vol.email})
    assert limited.status_code == 202  # the same answer as always, but no email
    assert len(inbox.messages) == 5
    clock.advance(hours=1, seconds=1)
    assert anon_client.post("/auth/code", json={"email": vol.email}).status_code == 202


def test_smtp_failure_looks_the_same_and_leaves_no_code(anon_client, session, settings):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    settings.smtp_host, settings.smtp_port = "127.0.0.1", free_port()
    r = anon_client.post("/auth/code", json={"email": vol.email})
    assert r.status_code == 202
    assert session.exec(select(LoginCode).where(LoginCode.user_id == vol.id)).first() is None


def test_tokens_expire_after_idle_days_and_stay_alive_with_use(anon_client, session, clock):
    vol = f.user(session, Role.volunteer, f.forening(session, f.kommun(session)))
    headers = f.auth_headers(session, vol, clock.now)
    clock.advance(days=179)
    assert anon_client.get("/me", headers=headers).status_code == 200
    clock.advance(days=179)
    assert anon_client.get("/me", headers=headers).status_code == 200
    clock.advance(days=181)
    expired = anon_client.get("/me", headers=headers)
    assert expired.status_code == 401 and expired.headers["www-authenticate"] == "Bearer"
    assert (
        anon_client.get("/me", headers={"Authorization": "Bearer kn_nonsense"}).status_code == 401
    )


def test_revoking_devices(client, anon_client, session, clock):
    ost = f.kommun(session)
    vol = f.user(session, Role.volunteer, f.forening(session, ost))
    phone = f.auth_headers(session, vol, clock.now)
    tablet = f.auth_headers(session, vol, clock.now)
    devices = anon_client.get("/me/devices", headers=phone).json()
    assert len(devices) == 2
    revoked = anon_client.delete(f"/me/devices/{devices[0]['id']}", headers=phone)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    still = [h for h in (phone, tablet) if anon_client.get("/me", headers=h).status_code == 200]
    assert len(still) == 1
    by_lead = client.post(f"/users/{vol.id}/devices/revoke")
    assert by_lead.json() == {"revoked": 1}
    assert anon_client.get("/me", headers=still[0]).status_code == 401
    listed = client.get(f"/users/{vol.id}/devices").json()
    assert all(d["revoked_at"] for d in listed)


def test_invitations_respect_rank_and_unit(anon_client, session, clock):
    ost = f.kommun(session)
    are = f.kommun(session, "2321", "Åre")
    frosön, jarpen = f.forening(session, ost), f.forening(session, are, "S-föreningen Järpen")
    lead = f.user(session, Role.forening_lead, frosön)
    h = f.auth_headers(session, lead, clock.now)

    def invite(**body):
        base = {"email": f"x{len(body)}{body.get('unit_id')}@example.org", "display_name": "X"}
        return anon_client.post("/users", headers=h, json=base | body)

    assert invite(unit_id=frosön.id).status_code == 201
    assert invite(unit_id=jarpen.id).status_code == 403
    assert invite(role="kommun_lead", unit_kind="kommun", unit_id=ost.id).status_code == 403
    mismatch = invite(role="kommun_lead", unit_kind="forening", unit_id=frosön.id)
    assert mismatch.status_code == 422 and mismatch.json()["detail"].startswith("unit_kind:")
    # A unit that does not exist is answered as one out of reach: nothing tells them apart.
    missing, elsewhere = invite(unit_id=999999), invite(unit_id=jarpen.id)
    assert missing.status_code == elsewhere.status_code == 403
    assert "does not exist or is outside your unit" in missing.json()["detail"]
    assert missing.json()["detail"].replace("999999", "N") == elsewhere.json()["detail"].replace(
        str(jarpen.id), "N"
    )
    dup = anon_client.post(
        "/users",
        headers=h,
        json={"email": lead.email.upper(), "display_name": "X", "unit_id": frosön.id},
    )
    assert dup.status_code == 409
