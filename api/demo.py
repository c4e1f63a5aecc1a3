"""The demo campaign: Jämtlands län with its eight kommuner, föreningar, volunteers and the
election-year targets of the district's action programme. Loading is deterministic and
idempotent: running it again changes nothing."""

import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import Session, select

from api.auth.scope import Scope
from api.campaigns.schemas import ApportionRequest
from api.campaigns.service import apportion
from api.districts.schemas import ImportOptions
from api.districts.service import assign_district, import_district_file
from api.models import (
    Campaign,
    District,
    Forening,
    ForeningKind,
    Kommun,
    Partidistrikt,
    Role,
    Target,
    User,
    utcnow,
)
from api.org import tree
from api.settings import get_settings

__all__ = ["CAMPAIGN_TARGETS", "FORENINGAR", "KOMMUNER", "load_demo", "simulate_logging"]

PARTIDISTRIKT = ("23", "Socialdemokraterna i Jämtlands län")

# Real SCB codes and names; the district counts follow the 2022 valdistrikt roughly.
KOMMUNER: list[tuple[str, str, int]] = [
    ("2303", "Ragunda", 4),
    ("2305", "Bräcke", 5),
    ("2309", "Krokom", 10),
    ("2313", "Strömsund", 8),
    ("2321", "Åre", 9),
    ("2326", "Berg", 6),
    ("2361", "Härjedalen", 8),
    ("2380", "Östersund", 33),
]

# Geographic föreningar take the kommun's districts in turn; some districts stay uncovered.
FORENINGAR: dict[str, list[tuple[str, ForeningKind]]] = {
    "2303": [("S-föreningen Hammarstrand", ForeningKind.geographic)],
    "2305": [("S-föreningen Bräcke-Kälarne", ForeningKind.geographic)],
    "2309": [
        ("S-föreningen Krokom-Dvärsätt", ForeningKind.geographic),
        ("S-föreningen Föllinge", ForeningKind.geographic),
    ],
    "2313": [
        ("S-föreningen Strömsund", ForeningKind.geographic),
        ("S-föreningen Hammerdal", ForeningKind.geographic),
    ],
    "2321": [
        ("S-föreningen Järpen", ForeningKind.geographic),
        ("S-föreningen Åre-Undersåker", ForeningKind.geographic),
        ("Kommunalklubben Åre", ForeningKind.workplace),
    ],
    "2326": [("S-föreningen Svenstavik-Myrviken", ForeningKind.geographic)],
    "2361": [
        ("S-föreningen Sveg", ForeningKind.geographic),
        ("S-föreningen Funäsdalen", ForeningKind.geographic),
    ],
    "2380": [
        ("S-föreningen Centrum", ForeningKind.geographic),
        ("S-föreningen Frösön", ForeningKind.geographic),
        ("S-föreningen Brunflo", ForeningKind.geographic),
        ("S-föreningen Odensala-Torvalla", ForeningKind.geographic),
        ("S-klubben Östersunds sjukhus", ForeningKind.workplace),
    ],
}

CAMPAIGN_NAME = "Valåret (demo)"
# The demo's election year is placed around the day it is loaded, so that pace, projection
# and the nightly email have a running campaign to show: 70 days done, 180 to go.
CAMPAIGN_DAYS_DONE, CAMPAIGN_DAYS_LEFT = 70, 180
# Jämtland's organisational action programme: the election year's measurable goals.
CAMPAIGN_TARGETS = {"conversations": 43_000, "active_volunteers": 155, "new_members": 310}
VOLUNTEERS_PER_FORENING = 3
UNCOVERED_EVERY = 6  # every sixth district of a kommun is left without a förening


def _today() -> date:
    from api.contacts.rules import local_day

    return local_day(utcnow(), get_settings().timezone)


def _user(session: Session, email: str, name: str, role: Role, unit: int) -> None:
    if session.exec(select(User).where(User.email == email)).first() is None:
        kind = tree.lead_kind(role)
        session.add(User(email=email, display_name=name, role=role, unit_kind=kind, unit_id=unit))


def load_demo(
    *,
    session: Session,
    districts_path: Path,
    addresses_path: Path | None = None,
    today: date | None = None,
) -> dict[str, int]:
    """Create the Jämtland demo campaign; idempotent."""
    today = today or _today()
    addresses_path = addresses_path or get_settings().demo_addresses_path
    code, name = PARTIDISTRIKT
    pd_ = session.exec(select(Partidistrikt).where(Partidistrikt.code == code)).first()
    if pd_ is None:
        pd_ = Partidistrikt(code=code, name=name)
        session.add(pd_)
        session.flush()
    _user(
        session,
        "distrikt@example.org",
        "Distriktsexpedition Jämtland",
        Role.district_admin,
        pd_.id,
    )

    kommuner: dict[str, Kommun] = {}
    for kcode, kname, _ in KOMMUNER:
        kommun = session.exec(select(Kommun).where(Kommun.code == kcode)).first()
        if kommun is None:
            kommun = Kommun(code=kcode, name=kname, partidistrikt_id=pd_.id)
            session.add(kommun)
            session.flush()
        kommuner[kcode] = kommun
        _user(
            session,
            f"kommun{kcode}@example.org",
            f"Kommunansvarig {kname}",
            Role.kommun_lead,
            kommun.id,
        )

    operator = Scope.operator(session)
    summary = import_district_file(
        session=session,
        scope=operator,
        path=districts_path,
        options=ImportOptions(voters_column="voters", households_column="households"),
    )

    volunteer_no = 0
    for kcode, entries in FORENINGAR.items():
        kommun = kommuner[kcode]
        geographic: list[Forening] = []
        for fname, kind in entries:
            forening = session.exec(
                select(Forening).where(Forening.kommun_id == kommun.id, Forening.name == fname)
            ).first()
            if forening is None:
                forening = Forening(name=fname, kind=kind, kommun_id=kommun.id)
                session.add(forening)
                session.flush()
            if kind == ForeningKind.geographic:
                geographic.append(forening)
            slug = f"{kcode}-{len(geographic) if kind == ForeningKind.geographic else 'k'}"
            _user(
                session,
                f"ordforande-{slug}@example.org",
                f"Ordförande {fname}",
                Role.forening_lead,
                forening.id,
            )
            for _ in range(VOLUNTEERS_PER_FORENING):
                volunteer_no += 1
                _user(
                    session,
                    f"volontar{volunteer_no:03d}@example.org",
                    f"Volontär {volunteer_no:03d}",
                    Role.volunteer,
                    forening.id,
                )
        districts = session.exec(
            select(District).where(District.kommun_id == kommun.id).order_by(District.code)
        ).all()
        share = -(-len(districts) // len(geographic))
        for i, district in enumerate(districts):
            if (i + 1) % UNCOVERED_EVERY == 0 or district.forening_id is not None:
                continue
            assign_district(
                session=session,
                scope=operator,
                code=district.code,
                forening_id=geographic[i // share].id,
                via="demo",
            )

    campaign = session.exec(
        select(Campaign).where(Campaign.name == CAMPAIGN_NAME, Campaign.partidistrikt_id == pd_.id)
    ).first()
    if campaign is None:
        campaign = Campaign(
            name=CAMPAIGN_NAME,
            partidistrikt_id=pd_.id,
            starts_on=today - timedelta(days=CAMPAIGN_DAYS_DONE),
            ends_on=today + timedelta(days=CAMPAIGN_DAYS_LEFT),
            pace_curve="final_weeks",
        )
        session.add(campaign)
        session.flush()
    for metric, value in CAMPAIGN_TARGETS.items():
        exists = session.exec(
            select(Target).where(
                Target.campaign_id == campaign.id,
                Target.unit_kind == tree.kind_of(pd_),
                Target.unit_id == pd_.id,
                Target.metric == metric,
            )
        ).first()
        if exists is None:
            session.add(
                Target(
                    campaign_id=campaign.id,
                    unit_kind=tree.kind_of(pd_),
                    unit_id=pd_.id,
                    metric=metric,
                    value=value,
                )
            )
    session.flush()
    # Kommun targets by voters, so that the district admin's email has targets per kommun.
    for metric in ("conversations", "new_members"):
        apportion(
            session=session,
            scope=operator,
            campaign_id=campaign.id,
            data=ApportionRequest(unit_kind="partidistrikt", unit_id=pd_.id, metric=metric),
            now=utcnow(),
        )
    from api.members.demo import load_demo_members  # members: one block, see api/members

    load_demo_members(session=session, today=today, campaign_id=campaign.id)
    from api.turfs.demo import load_demo_turfs  # addresses, turfs, leases: see api/turfs

    turfs = load_demo_turfs(session=session, addresses_path=addresses_path, now=utcnow())
    return {"districts_created": summary.created, "kommuner": len(kommuner), **turfs}


# How busy each kommun's volunteers are in the simulation: some keep pace, some fall behind.
_ACTIVITY = {
    "2380": 1.8,
    "2321": 0.7,
    "2309": 1.0,
    "2313": 0.5,
    "2361": 0.8,
    "2326": 1.1,
    "2305": 0.6,
    "2303": 0.9,
}


def simulate_logging(
    *, session: Session, weeks: int, until: date | None = None, seed: int = 2030
) -> dict[str, object]:
    """Log demo contacts for every day of the last ``weeks`` weeks, deterministically."""
    import random

    from api.contacts.rules import conversations_of, local_day
    from api.models import ContactKind, ContactLog, Outcome, VisitStatus
    from api.turfs.demo import VISIT_STATUS, demo_walks, sync_demo_visits

    campaign = session.exec(select(Campaign).where(Campaign.name == CAMPAIGN_NAME)).first()
    if campaign is None:
        raise ValueError("load the demo first (knacka load-demo)")
    until = until or (_today() - timedelta(days=1))
    first = max(campaign.starts_on, until - timedelta(weeks=weeks) + timedelta(days=1))
    rng = random.Random(seed)
    people = session.exec(
        select(User, Forening, Kommun)
        .join(Forening, (User.unit_id == Forening.id) & (User.unit_kind == tree.MEMBER_KIND))
        .join(Kommun, Kommun.id == Forening.kommun_id)
        .where(User.email.like("%@example.org"))
        .order_by(User.id)
    ).all()
    districts_of: dict[int, list[District]] = {}
    districts_by_id: dict[int, District] = {}
    for district in session.exec(select(District).order_by(District.code)):
        districts_of.setdefault(district.kommun_id, []).append(district)
        districts_by_id[district.id] = district
    timezone = get_settings().timezone
    zone = ZoneInfo(timezone)
    outcomes = [Outcome.conversation] * 5 + [Outcome.not_home] * 4 + [Outcome.refused] * 1
    # Door sessions of a turf's holder walk it, door by door: a record naming the turf per
    # door, and the door's visit with only its neutral status (as the app syncs them).
    walks = demo_walks(session=session, timezone=timezone)
    rows = []
    visits = 0
    day = first
    while day <= until:
        day_visits: list[dict[str, object]] = []
        for user, forening, kommun in people:
            if rng.random() > 0.22 * _ACTIVITY[kommun.code]:
                continue
            district = rng.choice(districts_of[kommun.id])
            kind = rng.choice(
                [ContactKind.door] * 6 + [ContactKind.phone] * 2 + [ContactKind.stall]
            )
            walk = None
            if kind == ContactKind.door:
                walk = next(
                    (
                        w
                        for w in walks.get(user.id, [])
                        if w.first_day <= day <= w.last_day and not w.finished
                    ),
                    None,
                )
            doors = rng.randint(8, 30) if kind != ContactKind.stall else 1
            if walk is not None:
                doors = rng.randint(3, 9)  # a turf's entrances hold many doors each
            for _ in range(doors):
                outcome = (
                    Outcome.conversation if kind == ContactKind.stall else rng.choice(outcomes)
                )
                quantity = rng.randint(5, 25) if kind == ContactKind.stall else 1
                moment = datetime.combine(day, time(rng.randint(10, 19), rng.randint(0, 59)), zone)
                turf_id = None
                if walk is not None:
                    door = walk.next_door()
                    if door is None:
                        break
                    if rng.random() < 0.04:  # a locked entrance
                        outcome = Outcome.no_access
                    status = VISIT_STATUS[outcome]
                    if status != VisitStatus.answered and door[1]:
                        walk.again.append(door[0])
                    turf_id, district = walk.turf_id, districts_by_id[walk.district_id]
                    day_visits.append(
                        {
                            "client_uuid": str(uuid.uuid4()),
                            "turf": walk.code,
                            "address_id": door[0],
                            "status": status.value,
                            "occurred_at": moment.isoformat(),
                        }
                    )
                rows.append(
                    {
                        "client_uuid": uuid.uuid4(),
                        "body_hash": "demo",
                        "user_id": user.id,
                        "district_id": district.id,
                        "kommun_id": kommun.id,
                        "forening_id": forening.id,
                        "kind": kind.value,
                        "outcome": outcome.value,
                        "quantity": quantity,
                        "conversations": conversations_of(kind, outcome, quantity),
                        "new_member": rng.random() < 0.006,
                        "occurred_at": moment,
                        "day": local_day(moment, timezone),
                        "received_at": moment,
                        "changed_at": utcnow(),
                        "turf_id": turf_id,
                    }
                )
        # Synced through the visit sync that evening, as an operator: its checks of each
        # visit apply, not those of who may log in which turf (the holders were chosen so).
        evening = datetime.combine(day, time(21, 0), zone)
        visits += sync_demo_visits(session=session, visits=day_visits, now=evening)
        day += timedelta(days=1)
    for start in range(0, len(rows), 2000):
        session.execute(insert(ContactLog), rows[start : start + 2000])
    session.flush()
    return {"from": first, "until": until, "contacts": len(rows), "visits": visits}
