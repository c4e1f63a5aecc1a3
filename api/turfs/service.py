"""Turfs and their leases: a turf is checked out to one volunteer or one förening (a team)
at a time, until its lease expires or is released. Leads of the turf's district (kommun
leads, district admins, the lead of the district's förening) assign and release; a
volunteer or förening lead of the kommun may claim a free turf by its short link.

At most one live lease per turf is enforced by the database (the partial unique index
uq_turf_lease_live): of two claims at the same moment one wins, the other gets 409."""

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from api.auth.scope import Forbidden, Scope
from api.errors import Conflict, NotFound, Unprocessable
from api.models import District, Forening, Turf, TurfLease, UnitKind, User
from api.org import tree
from api.settings import Settings
from api.turfs.coverage import coverage_of
from api.turfs.schemas import LeaseIn, LeaseRead, TurfRead

__all__ = [
    "assign_lease",
    "claim_turf",
    "get_turf",
    "list_turfs",
    "live_leases",
    "my_turfs",
    "release_lease",
    "take_lease",
    "to_read",
]


def get_turf(*, session: Session, scope: Scope, code: str) -> Turf:
    """The turf with ``code`` if the caller sees it; 404 alike for a missing or unseen one."""
    turf = session.exec(select(Turf).where(Turf.code == code.strip())).first()
    if turf is None or not scope.sees(turf):
        raise NotFound(f"turf with code {code} not found")
    return turf


def list_turfs(
    *, session: Session, scope: Scope, district: str | None, kommun: str | None
) -> list[Turf]:
    """The live turfs of one district or kommun that the caller sees, in code order."""
    if (district is None) == (kommun is None):
        raise Unprocessable("district: give exactly one of district and kommun (codes)")
    if district is not None:
        kind, ref, field = tree.kind_of(District), district, "district"
    else:
        kind, ref, field = tree.HOME_KIND, kommun, "kommun"
    model = tree.level(kind).model
    unit = session.exec(select(model).where(model.code == ref.strip())).first()
    if unit is None or not scope.sees(unit):
        raise Forbidden(f"{field}: {ref} does not exist or is outside your unit")
    return tree.units_under(
        session,
        tree.kind_of(Turf),
        kind,
        [unit.id],
        where=col(Turf.retired_at).is_(None) & scope.seen_filter(tree.kind_of(Turf), Turf.id),
    )


def live_leases(*, session: Session, turf_ids: set[int], now: datetime) -> dict[int, TurfLease]:
    """The unreleased, unexpired lease of each turf that has one."""
    if not turf_ids:
        return {}
    rows = session.exec(
        select(TurfLease).where(
            col(TurfLease.turf_id).in_(turf_ids),
            col(TurfLease.released_at).is_(None),
            TurfLease.expires_at > now,
        )
    )
    return {lease.turf_id: lease for lease in rows}


def _holder_names(session: Session, leases: list[TurfLease]) -> tuple[dict, dict]:
    """Users (id -> (name, förening id)) and förening names of the leases' holders."""
    user_ids = {le.user_id for le in leases if le.user_id is not None}
    users = {}
    if user_ids:
        for u in session.exec(select(User).where(col(User.id).in_(user_ids))):
            fid = u.unit_id if UnitKind(u.unit_kind) == tree.MEMBER_KIND else None
            users[u.id] = (u.display_name, fid)
    forening_ids = {le.forening_id for le in leases if le.forening_id is not None}
    forening_ids |= {fid for _, fid in users.values() if fid is not None}
    return users, tree.names(session, tree.kind_of(Forening), forening_ids)


def _lease_read(
    lease: TurfLease, *, lead: bool, me: int | None, users: dict, foreningar: dict
) -> LeaseRead:
    if lease.user_id is not None:
        name, fid = users.get(lease.user_id, (None, None))
        forening = foreningar.get(fid)
        # Anyone but a lead learns who holds a turf only as far as their förening.
        holder = name if lead else ("you" if lease.user_id == me else forening)
        return LeaseRead(
            holder_kind="user", holder=holder, forening=forening, expires_at=lease.expires_at
        )
    forening = foreningar.get(lease.forening_id)
    return LeaseRead(
        holder_kind="forening", holder=forening, forening=forening, expires_at=lease.expires_at
    )


def to_read(*, session: Session, scope: Scope, turfs: list[Turf], now: datetime) -> list[TurfRead]:
    """Turfs as answered: with coverage and lease state, in a fixed number of queries."""
    if not turfs:
        return []
    ids = {t.id for t in turfs}
    coverage = coverage_of(session=session, turfs=turfs)
    leases = live_leases(session=session, turf_ids=ids, now=now)
    users, foreningar = _holder_names(session, list(leases.values()))
    district_codes = dict(
        session.execute(
            select(District.id, District.code).where(
                col(District.id).in_({t.district_id for t in turfs})
            )
        ).all()
    )
    me = scope.user.id if scope.user is not None else None
    # Whoever leads a district leads its turfs: asked once per district, not per turf.
    leads: dict[int, bool] = {}
    for t in turfs:
        if t.id in leases and t.district_id not in leads:
            leads[t.district_id] = scope.leads(t.district_id, tree.kind_of(District))
    out = []
    for t in turfs:
        lease = leases.get(t.id)
        out.append(
            TurfRead(
                code=t.code,
                district_code=district_codes[t.district_id],
                households=t.households,
                address_count=t.address_count,
                walk_length_m=t.walk_length_m,
                coverage=coverage[t.id],
                lease=None
                if lease is None
                else _lease_read(
                    lease, lead=leads[t.district_id], me=me, users=users, foreningar=foreningar
                ),
                link_code=t.link_code,
            )
        )
    return out


def _release_expired(session: Session, turf: Turf, now: datetime) -> None:
    """An expired lease counts as free: release it so that a new one may be taken."""
    session.execute(
        update(TurfLease)
        .where(
            TurfLease.turf_id == turf.id,
            col(TurfLease.released_at).is_(None),
            TurfLease.expires_at <= now,
        )
        .values(released_at=now)
    )


def _taken_message(session: Session, turf: Turf, now: datetime) -> str:
    """Who holds the turf, named by their förening only (never the person)."""
    lease = live_leases(session=session, turf_ids={turf.id}, now=now).get(turf.id)
    if lease is None:  # the winner's lease is not visible (yet): say so plainly
        return f"turf {turf.code} was just taken by someone else"
    users, foreningar = _holder_names(session, [lease])
    fid = lease.forening_id if lease.forening_id is not None else users[lease.user_id][1]
    by = foreningar.get(fid, "another förening")
    return f"turf {turf.code} is already taken by {by} until {lease.expires_at:%Y-%m-%d %H:%M} UTC"


def take_lease(
    *,
    session: Session,
    turf: Turf,
    user_id: int | None,
    forening_id: int | None,
    by: int | None,
    expires_at: datetime,
    now: datetime,
) -> TurfLease:
    """Insert a live lease; a live one held already (also one committed a moment ago by a
    concurrent request) is a 409 naming the holder's förening."""
    lease = TurfLease(
        turf_id=turf.id,
        user_id=user_id,
        forening_id=forening_id,
        leased_by_user_id=by,
        leased_at=now,
        expires_at=expires_at,
    )
    try:
        with session.begin_nested():
            session.add(lease)
    except IntegrityError:
        raise Conflict(_taken_message(session, turf, now)) from None
    return lease


def _free_or_409(session: Session, turf: Turf, now: datetime) -> None:
    if turf.retired_at is not None:
        raise Conflict(f"turf {turf.code} is retired")
    _release_expired(session, turf, now)
    if live_leases(session=session, turf_ids={turf.id}, now=now):
        raise Conflict(_taken_message(session, turf, now))


def assign_lease(
    *, session: Session, scope: Scope, settings: Settings, code: str, body: LeaseIn, now: datetime
) -> Turf:
    """A lead of the turf's district checks it out to a volunteer or a förening of its
    kommun; 409 while it is leased."""
    turf = get_turf(session=session, scope=scope, code=code)
    scope.require(scope.leads(turf), f"turf {turf.code}: only leads of its district assign it;")
    if body.user_id is not None:
        holder = session.get(User, body.user_id) if body.user_id < 2**63 else None
        in_kommun = (
            holder is not None
            and holder.is_active
            and UnitKind(holder.unit_kind) == tree.MEMBER_KIND
            and (f := session.get(Forening, holder.unit_id)) is not None
            and f.kommun_id == turf.kommun_id
        )
        if not in_kommun:
            raise Forbidden(
                f"user_id: user {body.user_id} does not exist or is not a member of a förening "
                "in the turf's kommun"
            )
    else:
        f = session.get(Forening, body.forening_id) if body.forening_id < 2**63 else None
        if f is None or f.kommun_id != turf.kommun_id or not scope.sees(f):
            raise Forbidden(
                f"forening_id: förening {body.forening_id} does not exist or is not in the "
                "turf's kommun"
            )
    _free_or_409(session, turf, now)
    take_lease(
        session=session,
        turf=turf,
        user_id=body.user_id,
        forening_id=body.forening_id,
        by=scope.user.id if scope.user else None,
        expires_at=now + timedelta(days=body.days or settings.turf_lease_days),
        now=now,
    )
    return turf


def release_lease(*, session: Session, scope: Scope, code: str, now: datetime) -> Turf:
    """A lead of the turf's district, or the holder (for a förening, its lead), hands the
    turf back."""
    turf = get_turf(session=session, scope=scope, code=code)
    lease = live_leases(session=session, turf_ids={turf.id}, now=now).get(turf.id)
    if lease is None:
        raise NotFound(f"turf {turf.code} has no lease")
    me = scope.user
    holder = me is not None and (
        lease.user_id == me.id
        or (
            lease.forening_id is not None and scope.leads(lease.forening_id, tree.kind_of(Forening))
        )
    )
    scope.require(holder or scope.leads(turf), f"turf {turf.code}'s lease")
    lease.released_at = now
    lease.released_by_user_id = me.id if me else None
    session.add(lease)
    session.flush()
    return turf


def my_turfs(*, session: Session, scope: Scope, now: datetime) -> list[Turf]:
    """The turfs leased to the caller, or to their förening as a team."""
    me = scope.user
    if me is None:
        return []
    holders = [TurfLease.user_id == me.id]
    if scope.member_of is not None:
        holders.append(TurfLease.forening_id == scope.member_of)
    leased = select(TurfLease.turf_id).where(
        or_(*holders), col(TurfLease.released_at).is_(None), TurfLease.expires_at > now
    )
    return list(session.exec(select(Turf).where(col(Turf.id).in_(leased)).order_by(Turf.code)))


def claim_turf(
    *, session: Session, scope: Scope, settings: Settings, link_code: str, now: datetime
) -> Turf:
    """A volunteer or förening lead of the turf's kommun takes a free turf for themselves,
    from its printed QR code; an expired lease counts as free."""
    turf = session.exec(select(Turf).where(Turf.link_code == link_code.strip())).first()
    if turf is None or not scope.sees(turf):
        raise NotFound(f"turf link {link_code} not found")
    if scope.member_of is None or scope.home_id != turf.kommun_id:
        raise Forbidden(
            "turf: volunteers and förening leads of its kommun claim turfs; "
            "leads assign them with POST /turfs/{code}/lease"
        )
    _free_or_409(session, turf, now)
    take_lease(
        session=session,
        turf=turf,
        user_id=scope.user.id,
        forening_id=None,
        by=scope.user.id,
        expires_at=now + timedelta(days=settings.turf_lease_days),
        now=now,
    )
    return turf
