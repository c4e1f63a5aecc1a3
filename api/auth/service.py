"""Sign-in with one-time email codes, device tokens, and invitations."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, func, update
from sqlmodel import Session, col, select

from api.auth.schemas import Invite
from api.auth.scope import Scope
from api.db import save_unique
from api.errors import Conflict, NotFound, Unprocessable
from api.mail import MailError, build_message, send_message
from api.models import DeviceToken, LoginCode, User
from api.org import tree
from api.settings import Settings

__all__ = [
    "LAST_USED_GRANULARITY",
    "Refused",
    "authenticate",
    "devices_of",
    "exchange_code",
    "get_user",
    "hash_token",
    "invite_user",
    "issue_device_token",
    "list_devices",
    "list_users",
    "request_code",
    "revoke_device",
    "revoke_devices_of",
    "set_preferences",
    "token_idle_cutoff",
]

TOKEN_PREFIX = "kn_"
_log = logging.getLogger("knacka.auth")
# Writing last_used_at on every request would turn every read into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass
class Refused:
    """A refused sign-in; the caller records the failed attempt and answers 400."""

    message: str


def hash_token(raw: str) -> str:
    """The stored form of a token or code: its SHA-256."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _code_hash(user_id: int, code: str) -> str:
    return hash_token(f"{user_id}:{code}")


def _active_user_by_email(session: Session, email: str) -> User | None:
    return session.exec(
        select(User).where(func.lower(User.email) == email.strip().lower(), col(User.is_active))
    ).first()


def _over_limits(
    session: Session, settings: Settings, user_id: int, client: str, since: datetime
) -> str | None:
    """Which hourly limit a new code for this user, asked from this client, would pass."""
    recent = LoginCode.created_at >= since
    from_client = LoginCode.client == client
    for_user, for_user_from_client = session.exec(
        select(func.count(), func.coalesce(func.sum(case((from_client, 1), else_=0)), 0))
        .select_from(LoginCode)
        .where(LoginCode.user_id == user_id, recent)
    ).one()
    if for_user_from_client >= settings.login_codes_per_hour:
        return "for this address from this client"
    if for_user >= settings.login_codes_per_hour_per_email:
        return "for this address"
    from_client_total = session.exec(
        select(func.count()).select_from(LoginCode).where(from_client, recent)
    ).one()
    if from_client_total >= settings.login_codes_per_hour_per_client:
        return "from this client"
    return None


def request_code(
    *, session: Session, settings: Settings, email: str, client: str, now: datetime
) -> None:
    """Email a one-time sign-in code to an active user; unknown addresses get nothing."""
    user = _active_user_by_email(session, email)
    if user is None:
        return
    # The caller always gets the same answer (202): a 429 or a 503 here would tell anyone
    # which addresses have accounts. Both cases are logged instead.
    limit = _over_limits(session, settings, user.id, client, now - timedelta(hours=1))
    if limit is not None:
        _log.warning(
            "sign-in codes for user %s: hourly limit %s reached; none sent", user.id, limit
        )
        return
    code = f"{secrets.randbelow(10**6):06d}"
    text = (
        f"Hej {user.display_name}!\n\n"
        f"Din inloggningskod till Knacka är: {code}\n\n"
        f"Koden gäller i {settings.login_code_minutes} minuter och kan bara användas en gång.\n"
        "Har du inte bett om en kod kan du bortse från det här mejlet.\n"
    )
    message = build_message(
        settings=settings, to=user.email, subject=f"Din inloggningskod: {code}", text=text
    )
    try:
        send_message(settings=settings, message=message)
    except MailError as exc:
        _log.error("sign-in code for user %s not sent: %s", user.id, exc.message)
        return
    # Earlier codes stay valid until they expire or are used: if a new request voided them,
    # anyone could keep a user from signing in by asking for codes in their name.
    session.add(
        LoginCode(
            user_id=user.id,
            code_hash=_code_hash(user.id, code),
            created_at=now,
            expires_at=now + timedelta(minutes=settings.login_code_minutes),
            client=client[:64],
        )
    )


def exchange_code(
    *, session: Session, settings: Settings, email: str, code: str, device_name: str, now: datetime
) -> tuple[str, DeviceToken] | Refused:
    """Trade any live one-time code for a new device token (returned once, stored hashed)."""
    refused = Refused("code: invalid or expired sign-in code; request a new one")
    user = _active_user_by_email(session, email)
    if user is None:
        return refused
    live = session.exec(
        select(LoginCode).where(
            LoginCode.user_id == user.id,
            col(LoginCode.used_at).is_(None),
            LoginCode.expires_at > now,
        )
    ).all()
    if not live:
        return refused
    guess = _code_hash(user.id, code.strip())
    # Every live code is compared, so the time taken does not tell which one matched.
    matches = [c for c in live if secrets.compare_digest(c.code_hash, guess)]
    if not matches:
        # A wrong guess counts against every live code, so that more codes in flight do not
        # mean more guesses. Atomic updates: parallel guesses must each count.
        ids = col(LoginCode.id).in_([c.id for c in live])
        session.execute(
            update(LoginCode).where(ids).values(failed_attempts=LoginCode.failed_attempts + 1)
        )
        spent = LoginCode.failed_attempts >= settings.login_code_attempts
        session.execute(
            update(LoginCode)
            .where(ids, spent, col(LoginCode.used_at).is_(None))
            .values(used_at=now)
        )
        return refused
    # Only one of two parallel exchanges of the same code may win it.
    this = LoginCode.id == matches[0].id
    claim = update(LoginCode).where(this, col(LoginCode.used_at).is_(None)).values(used_at=now)
    if session.execute(claim).rowcount != 1:
        return refused
    return issue_device_token(session=session, user=user, name=device_name, now=now)


def issue_device_token(
    *, session: Session, user: User, name: str, now: datetime
) -> tuple[str, DeviceToken]:
    """Create a device token for ``user``; the raw token exists only in the return value."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    device = DeviceToken(
        user_id=user.id,
        name=(name or "okänd enhet")[:100],
        token_hash=hash_token(raw),
        created_at=now,
        last_used_at=now,
    )
    session.add(device)
    session.flush()
    return raw, device


def token_idle_cutoff(*, settings: Settings, now: datetime) -> datetime:
    """A device token last used before this has died of idleness."""
    return now - timedelta(days=settings.device_token_idle_days)


# Built once: on every request, a statement built anew cost more to key for the compiled
# cache than to build, and about as much as running it.
_BY_TOKEN = (
    select(DeviceToken, User)
    .join(User, User.id == DeviceToken.user_id)
    .where(DeviceToken.token_hash == bindparam("token_hash"))
)


def authenticate(
    *, session: Session, settings: Settings, raw_token: str, now: datetime
) -> tuple[User, DeviceToken] | None:
    """The user and device behind a bearer token, if it is live."""
    row = session.exec(_BY_TOKEN, params={"token_hash": hash_token(raw_token)}).first()
    if row is None:
        return None
    device, user = row
    if (
        device.revoked_at is not None
        or not user.is_active
        or device.last_used_at < token_idle_cutoff(settings=settings, now=now)
    ):
        return None
    if now - device.last_used_at >= LAST_USED_GRANULARITY:
        _touch(session, device.id, now)
    return user, device


def _touch(session: Session, device_id: int, now: datetime) -> None:
    """Record a device's use, unless a parallel request of the same device is doing it:
    waiting for that row lock would make a phone's burst of requests run one at a time."""
    stale = col(DeviceToken.last_used_at) < now - LAST_USED_GRANULARITY
    target = select(DeviceToken.id).where(DeviceToken.id == device_id, stale)
    if session.get_bind().dialect.name == "postgresql":
        target = target.with_for_update(skip_locked=True)
    session.execute(
        update(DeviceToken).where(col(DeviceToken.id).in_(target)).values(last_used_at=now)
    )


def set_preferences(*, session: Session, user: User, nightly_email: bool) -> User:
    """Store the caller's email preferences."""
    user.nightly_email = nightly_email
    session.add(user)
    return user


def list_devices(*, session: Session, user_id: int) -> list[DeviceToken]:
    """A user's devices, newest first, revoked ones included."""
    return list(
        session.exec(
            select(DeviceToken)
            .where(DeviceToken.user_id == user_id)
            .order_by(col(DeviceToken.created_at).desc(), col(DeviceToken.id).desc())
        )
    )


def revoke_device(*, session: Session, user: User, device_id: int, now: datetime) -> DeviceToken:
    """Revoke one of the caller's own devices."""
    device = session.get(DeviceToken, device_id)
    if device is None or device.user_id != user.id:
        raise NotFound(f"device {device_id} not found")
    if device.revoked_at is None:
        device.revoked_at, device.revoked_by_user_id = now, user.id
        session.add(device)
    return device


def devices_of(*, session: Session, scope: Scope, user_id: int) -> list[DeviceToken]:
    """A lead's view of the devices of a user within their unit."""
    scope.require(scope.is_lead, "other users' devices")
    target = get_user(session=session, scope=scope, user_id=user_id)
    return list_devices(session=session, user_id=target.id)


def revoke_devices_of(*, session: Session, scope: Scope, user_id: int, now: datetime) -> int:
    """Revoke every live device of a user within the caller's unit; returns how many."""
    scope.require(scope.is_lead, "other users' devices")
    target = get_user(session=session, scope=scope, user_id=user_id)
    by = scope.user.id if scope.user else None
    result = session.execute(
        update(DeviceToken)
        .where(DeviceToken.user_id == target.id, col(DeviceToken.revoked_at).is_(None))
        .values(revoked_at=now, revoked_by_user_id=by)
    )
    return result.rowcount


def get_user(*, session: Session, scope: Scope, user_id: int) -> User:
    """One user within the caller's unit."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    scope.require(scope.sees_user(user), f"user {user_id}")
    return user


def list_users(*, session: Session, scope: Scope) -> list[User]:
    """Users within the caller's unit (a volunteer sees only themself)."""
    return list(session.exec(select(User).where(scope.users_filter()).order_by(User.id)))


def invite_user(*, session: Session, scope: Scope, data: Invite) -> User:
    """Create a volunteer or lead in a unit within the caller's reach."""
    if tree.lead_kind(data.role) != data.unit_kind:
        raise Unprocessable(
            f"unit_kind: a {data.role.value} belongs to a {tree.lead_kind(data.role).value}"
        )
    what = f"inviting a {data.role.value} to {data.unit_kind.value} {data.unit_id}"
    # The role first, then the unit, answered alike whether it is missing or out of reach.
    scope.require(scope.may_grant_role(data.role), f"inviting a {data.role.value}")
    scope.require_unit(data.unit_kind, data.unit_id, what, lead=True)
    if session.exec(select(User).where(func.lower(User.email) == data.email.lower())).first():
        raise Conflict(f"email: {data.email} already has an account")
    user = User(
        email=data.email.lower(),
        display_name=data.display_name,
        phone=data.phone,
        role=data.role,
        unit_kind=data.unit_kind,
        unit_id=data.unit_id,
        invited_by_user_id=scope.user.id if scope.user else None,
    )
    save_unique(session, user, f"email: {data.email} already has an account")
    return user
