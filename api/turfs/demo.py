"""The demo's door-level block: generated addresses in a few real towns
(``data/addresses/jamtland-demo.csv``, written by ``scripts/build_demo_addresses.py``),
their districts cut into turfs, some turfs leased to volunteers and föreningar, and the
walks ``knacka simulate`` makes on the leased ones. Everything goes through the services a
lead's requests use (the address import, the cut, the lease, the visit sync), and is
deterministic and idempotent like the rest of the demo (api.demo)."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from api.addresses.schemas import AddressImportOptions
from api.addresses.service import import_address_file
from api.auth.scope import Scope
from api.models import (
    Address,
    District,
    Forening,
    ForeningKind,
    Outcome,
    Role,
    Turf,
    TurfAddress,
    TurfLease,
    User,
    VisitStatus,
)
from api.settings import get_settings
from api.turfs.coverage import log_visits
from api.turfs.cutting import cut_turfs
from api.turfs.schemas import LeaseIn
from api.turfs.service import assign_lease

__all__ = ["VISIT_STATUS", "TurfWalk", "demo_walks", "load_demo_turfs", "sync_demo_visits"]

HOUSEHOLDS_COLUMN = "hushall"
# Every LEASE_EVERY-th turf of a cut district is leased, in turn to a volunteer and to a
# förening, so that the map shows free and leased turfs side by side.
LEASE_EVERY = 4
# Leases are placed around the day the demo is loaded, as the campaign is: taken some days
# ago, so that `knacka simulate` has days on which they were held to walk them.
LEASED_DAYS_AGO, LEASE_DAYS = 10, 28
# A door's visit status from its record's outcome, as the app maps them (app/static/store.js):
# whatever was said, the visit only says that someone answered.
VISIT_STATUS = {
    Outcome.conversation: VisitStatus.answered,
    Outcome.refused: VisitStatus.answered,
    Outcome.moved: VisitStatus.answered,
    Outcome.not_home: VisitStatus.not_home,
    Outcome.no_access: VisitStatus.no_access,
}


def load_demo_turfs(*, session: Session, addresses_path: Path, now: datetime) -> dict[str, int]:
    """Import the demo's addresses, cut their districts once, and lease some turfs."""
    operator = Scope.operator(session)
    imported = import_address_file(
        session=session,
        scope=operator,
        path=addresses_path,
        options=AddressImportOptions(households_column=HOUSEHOLDS_COLUMN),
    )
    # Only districts never cut: a second load must not re-cut (a re-cut retires the turfs
    # without visits or a live lease, and numbers new ones).
    cut_before = select(Turf.district_id)
    uncut = session.exec(
        select(Address.district_id)
        .where(col(Address.missing_since).is_(None))
        .where(col(Address.district_id).not_in(cut_before))
        .distinct()
        .order_by(Address.district_id)
    ).all()
    created: list[str] = []
    if uncut:
        summary = cut_turfs(
            session=session,
            scope=operator,
            district_ids=list(uncut),
            households=get_settings().turf_households,
            now=now,
        )
        created = [code for d in summary.districts for code in d.turfs]
    leased = _lease_some(session, created, now)
    return {"addresses": imported.created, "turfs": len(created), "leases": leased}


def _lease_some(session: Session, codes: list[str], now: datetime) -> int:
    """Lease every LEASE_EVERY-th of the newly cut turfs, by their kommun's lead, in turn to
    a volunteer of the district's förening (or the kommun's first, for an uncovered
    district) and to that förening."""
    if not codes:
        return 0
    settings = get_settings()
    turfs = session.exec(select(Turf).where(col(Turf.code).in_(codes)).order_by(Turf.id)).all()
    districts = {
        d.id: d
        for d in session.exec(
            select(District).where(col(District.id).in_({t.district_id for t in turfs}))
        )
    }
    kommun_ids = {t.kommun_id for t in turfs}
    leads = {
        u.unit_id: u
        for u in session.exec(
            select(User)
            .where(User.role == Role.kommun_lead, col(User.unit_id).in_(kommun_ids))
            .order_by(User.id)
        )
    }
    first_forening: dict[int, int] = {}
    for f in session.exec(
        select(Forening)
        .where(col(Forening.kommun_id).in_(kommun_ids), Forening.kind == ForeningKind.geographic)
        .order_by(Forening.id)
    ):
        first_forening.setdefault(f.kommun_id, f.id)
    volunteers: dict[int, list[User]] = {}
    for u in session.exec(select(User).where(User.role == Role.volunteer).order_by(User.id)):
        volunteers.setdefault(u.unit_id, []).append(u)
    start = now - timedelta(days=LEASED_DAYS_AGO)
    done = 0
    by_district: dict[int, list[Turf]] = {}
    for t in turfs:
        by_district.setdefault(t.district_id, []).append(t)
    for district_id, own in by_district.items():
        district = districts[district_id]
        forening_id = district.forening_id or first_forening[district.kommun_id]
        team = volunteers.get(forening_id, [])
        scope = Scope(session=session, user=leads[district.kommun_id])
        for i, turf in enumerate(own[::LEASE_EVERY]):
            if i % 2 == 0 and team:
                body = LeaseIn(user_id=team[(i // 2) % len(team)].id, days=LEASE_DAYS)
            else:
                body = LeaseIn(forening_id=forening_id, days=LEASE_DAYS)
            assign_lease(
                session=session,
                scope=scope,
                settings=settings,
                code=turf.code,
                body=body,
                now=start,
            )
            done += 1
    session.flush()
    return done


@dataclass
class TurfWalk:
    """A leased turf as the simulation walks it: its addresses in walking order, who may
    walk it and on which days, and how far the walk has come."""

    turf_id: int
    code: str
    district_id: int
    addresses: list[int]
    walkers: set[int]  # user ids: the holder, or every member of the holding förening
    first_day: date
    last_day: date
    position: int = 0
    # Addresses where nobody answered on the first round get a second knock.
    again: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.position >= len(self.addresses) and not self.again

    def next_door(self) -> tuple[int, bool] | None:
        """(address id, first round?) of the next door, or None when the walk is over."""
        if self.position < len(self.addresses):
            self.position += 1
            return self.addresses[self.position - 1], True
        if self.again:
            return self.again.pop(0), False
        return None


def demo_walks(*, session: Session, timezone: str) -> dict[int, list[TurfWalk]]:
    """The turfs under a live or past demo lease, per user who may walk them, in lease
    order; a few set-based queries."""
    from api.contacts.rules import local_day

    rows = session.exec(
        select(TurfLease, Turf)
        .join(Turf, Turf.id == TurfLease.turf_id)
        .where(col(Turf.retired_at).is_(None))
        .order_by(TurfLease.id)
    ).all()
    if not rows:
        return {}
    turf_ids = {t.id for _, t in rows}
    order: dict[int, list[int]] = {}
    for turf_id, address_id in session.exec(
        select(TurfAddress.turf_id, TurfAddress.address_id)
        .where(col(TurfAddress.turf_id).in_(turf_ids))
        .order_by(TurfAddress.turf_id, TurfAddress.position)
    ):
        order.setdefault(turf_id, []).append(address_id)
    members: dict[int, set[int]] = {}
    for user_id, forening_id in session.exec(
        select(User.id, User.unit_id)
        .join(Forening, Forening.id == User.unit_id)
        .where(col(User.role).in_([Role.volunteer, Role.forening_lead]))
    ):
        members.setdefault(forening_id, set()).add(user_id)
    walks: dict[int, list[TurfWalk]] = {}
    for lease, turf in rows:
        walkers = {lease.user_id} if lease.user_id else members.get(lease.forening_id, set())
        ends = min(lease.expires_at, lease.released_at or lease.expires_at)
        walk = TurfWalk(
            turf_id=turf.id,
            code=turf.code,
            district_id=turf.district_id,
            addresses=order.get(turf.id, []),
            walkers=walkers,
            first_day=local_day(lease.leased_at, timezone),
            last_day=local_day(ends, timezone),
        )
        for user_id in sorted(walkers):
            walks.setdefault(user_id, []).append(walk)
    return walks


def sync_demo_visits(*, session: Session, visits: list[dict[str, Any]], now: datetime) -> int:
    """Sync one simulated day's door visits as a phone would (one result per visit); any
    visit the sync refuses is a bug in the simulation, so it raises."""
    if not visits:
        return 0
    results = log_visits(
        session=session,
        scope=Scope.operator(session),
        settings=get_settings(),
        raw=visits,
        now=now,
    )
    refused = [r for r in results if r.status != "created"]
    if refused:
        raise ValueError(f"the simulation's visits were refused: {refused[:3]}")
    return len(results)
