"""Plain factory functions and tiny hand-drawn districts for tests."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, func, select

from api.auth.service import issue_device_token
from api.contacts.rules import local_day
from api.models import (
    Address,
    Campaign,
    ContactLog,
    District,
    Forening,
    ForeningKind,
    Kommun,
    Partidistrikt,
    Role,
    Target,
    Turf,
    TurfAddress,
    TurfLease,
    UnitKind,
    User,
    utcnow,
)

_UNIT_KIND = {
    Partidistrikt: UnitKind.partidistrikt,
    Kommun: UnitKind.kommun,
    Forening: UnitKind.forening,
}

# Near Östersund; a 0.01-degree square is roughly 500 m x 1.1 km.
LON, LAT = 14.60, 63.17


def partidistrikt(session: Session, code: str = "23", name: str = "Jämtlands län") -> Partidistrikt:
    found = session.exec(select(Partidistrikt).where(Partidistrikt.code == code)).first()
    if found is not None:
        return found
    obj = Partidistrikt(code=code, name=name)
    session.add(obj)
    session.flush()
    return obj


def kommun(
    session: Session, code: str = "2380", name: str = "Östersund", pd: Partidistrikt | None = None
) -> Kommun:
    pd = pd or partidistrikt(session)
    obj = Kommun(code=code, name=name, partidistrikt_id=pd.id)
    session.add(obj)
    session.flush()
    return obj


def forening(
    session: Session,
    kommun_: Kommun,
    name: str = "S-föreningen Frösön",
    kind: ForeningKind = ForeningKind.geographic,
) -> Forening:
    obj = Forening(name=name, kind=kind, kommun_id=kommun_.id)
    session.add(obj)
    session.flush()
    return obj


def square(col: int, row: int = 0, size: float = 0.01) -> list[list[list[float]]]:
    x, y = LON + col * size, LAT + row * size
    return [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]


_SQUARE = {"type": "Polygon", "coordinates": square(0)}


def feature(code: Any, name: str = "", geometry: dict | None = _SQUARE, **props: Any) -> dict:
    return {
        "type": "Feature",
        "properties": {"Lkfv": code, "Vdnamn": name or f"Distrikt {code}", **props},
        "geometry": geometry,
    }


def district_features(kommun_code: str = "2380", n: int = 3) -> list[dict]:
    """n side-by-side squares with valdistrikt-style codes in one kommun."""
    return [
        feature(f"{kommun_code}{i + 1:04d}", geometry={"type": "Polygon", "coordinates": square(i)})
        for i in range(n)
    ]


def write_geojson(path: Path, features: list[dict], crs: str | None = None) -> Path:
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def district_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(District)).one()


def upload_districts(client: Any, features: list[dict], name: str = "d.geojson", **params: Any):
    """POST a FeatureCollection to the import endpoint and return the response."""
    body = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    return client.post(
        "/districts/import", params=params, files={"file": (name, body, "application/geo+json")}
    )


_user_no = 0


def user(session: Session, role: Role, unit: Partidistrikt | Kommun | Forening) -> User:
    global _user_no
    _user_no += 1
    obj = User(
        email=f"{role.value.replace('_', '-')}-{_user_no}@example.org",
        display_name=f"{role.value} {_user_no}",
        role=role,
        unit_kind=_UNIT_KIND[type(unit)],
        unit_id=unit.id,
    )
    session.add(obj)
    session.flush()
    return obj


def auth_headers(session: Session, who: User, now: datetime | None = None) -> dict[str, str]:
    raw, _ = issue_device_token(session=session, user=who, name="test", now=now or utcnow())
    return {"Authorization": f"Bearer {raw}"}


def district(
    session: Session,
    kommun_: Kommun,
    code: str,
    col: int = 0,
    forening_: Forening | None = None,
    row: int = 0,
) -> District:
    """A square district stored directly (no import)."""
    import shapely
    from shapely.geometry import Polygon

    poly = Polygon(square(col, row)[0])
    minx, miny, maxx, maxy = poly.bounds
    obj = District(
        code=code,
        name=f"Distrikt {code}",
        kommun_id=kommun_.id,
        forening_id=forening_.id if forening_ else None,
        geom_wkb=shapely.to_wkb(poly),
        min_lon=minx,
        min_lat=miny,
        max_lon=maxx,
        max_lat=maxy,
        area_m2=500_000.0,
    )
    session.add(obj)
    session.flush()
    return obj


def contact(
    session: Session, author: User, district_: District, when: datetime, **fields: Any
) -> ContactLog:
    """A contact log stored directly, as if synced by ``author``."""
    import uuid

    values = {
        "kind": "door",
        "outcome": "conversation",
        "quantity": 1,
        "conversations": 1,
        "new_member": False,
    } | fields
    obj = ContactLog(
        client_uuid=uuid.uuid4(),
        body_hash="0" * 64,
        user_id=author.id,
        district_id=district_.id,
        kommun_id=district_.kommun_id,
        forening_id=author.unit_id if author.unit_kind == UnitKind.forening else None,
        occurred_at=when,
        day=local_day(when, "Europe/Stockholm"),
        received_at=when,
        changed_at=when,
        **values,
    )
    session.add(obj)
    session.flush()
    return obj


def campaign(
    session: Session,
    pd: Partidistrikt,
    starts: str = "2026-01-01",
    ends: str = "2026-09-13",
    **fields: Any,
) -> Campaign:
    from datetime import date

    obj = Campaign(
        name=f"Valrörelsen {ends[:4]}",
        partidistrikt_id=pd.id,
        starts_on=date.fromisoformat(starts),
        ends_on=date.fromisoformat(ends),
        **fields,
    )
    session.add(obj)
    session.flush()
    return obj


def target(session: Session, camp: Campaign, unit: Any, metric: str, value: int) -> Target:
    obj = Target(
        campaign_id=camp.id,
        unit_kind=_UNIT_KIND.get(type(unit), UnitKind.district),
        unit_id=unit.id,
        metric=metric,
        value=value,
    )
    session.add(obj)
    session.flush()
    return obj


_address_no = 0


def address(
    session: Session,
    district_: District,
    street: str = "Storgatan",
    number: str | None = None,
    households: int = 1,
    lon: float | None = None,
    lat: float | None = None,
) -> Address:
    """An address stored directly (no import), inside its district's square unless placed."""
    global _address_no
    _address_no += 1
    obj = Address(
        key=f"test-{_address_no}",
        district_id=district_.id,
        kommun_id=district_.kommun_id,
        street=street,
        number=str(_address_no) if number is None else number,
        postcode="83130",
        postort="Östersund",
        lon=district_.min_lon + 0.001 * (_address_no % 9 + 1) if lon is None else lon,
        lat=district_.min_lat + 0.001 * (_address_no % 7 + 1) if lat is None else lat,
        households=households,
        households_source="file",
    )
    session.add(obj)
    session.flush()
    return obj


def app_turf(session: Session, district_: District, n: int = 1, addresses: int = 3) -> Turf:
    """A turf of ``district_`` with ``addresses`` one-household addresses in walking order,
    stored directly (no cutting), for the volunteers' app."""
    import shapely
    from shapely.geometry import box

    geom = box(district_.min_lon, district_.min_lat, district_.max_lon, district_.max_lat)
    turf_ = Turf(
        code=f"{district_.code}-{n}",
        district_id=district_.id,
        kommun_id=district_.kommun_id,
        households=addresses,
        address_count=addresses,
        geom_wkb=shapely.to_wkb(geom),
        min_lon=district_.min_lon,
        min_lat=district_.min_lat,
        max_lon=district_.max_lon,
        max_lat=district_.max_lat,
        link_code=f"L{district_.code}{n}"[:16],
    )
    session.add(turf_)
    session.flush()
    for i in range(addresses):
        address = Address(
            key=f"{turf_.code}-{i}",
            district_id=district_.id,
            kommun_id=district_.kommun_id,
            street="Storgatan",
            number=str(i + 1),
            lon=district_.min_lon + 0.001 * (i + 1),
            lat=district_.min_lat + 0.001,
        )
        session.add(address)
        session.flush()
        session.add(TurfAddress(turf_id=turf_.id, address_id=address.id, position=i + 1))
    session.flush()
    return turf_


def turf(
    session: Session,
    district_: District,
    n: int = 1,
    addresses: list[Address] | None = None,
    link_code: str | None = None,
) -> Turf:
    """A turf over the south-west quarter of its district, with ``addresses`` walked in the
    order given (stored as TurfAddress rows)."""
    import shapely
    from shapely.geometry import box

    addresses = addresses or []
    half = (district_.max_lon - district_.min_lon) / 2
    poly = box(district_.min_lon, district_.min_lat, district_.min_lon + half, district_.max_lat)
    minx, miny, maxx, maxy = poly.bounds
    obj = Turf(
        code=f"{district_.code}-{n}",
        district_id=district_.id,
        kommun_id=district_.kommun_id,
        households=sum(a.households for a in addresses),
        address_count=len(addresses),
        walk_length_m=120.0 * len(addresses),
        geom_wkb=shapely.to_wkb(poly),
        min_lon=minx,
        min_lat=miny,
        max_lon=maxx,
        max_lat=maxy,
        link_code=link_code or f"t{district_.code}x{n}".lower(),
    )
    session.add(obj)
    session.flush()
    for position, a in enumerate(addresses, start=1):
        session.add(TurfAddress(turf_id=obj.id, address_id=a.id, position=position))
    session.flush()
    return obj


def lease(
    session: Session,
    turf_: Turf,
    holder: User | Forening,
    now: datetime,
    days: int = 14,
) -> TurfLease:
    """A live lease of ``turf_`` held by a volunteer or a förening."""
    from datetime import timedelta

    obj = TurfLease(
        turf_id=turf_.id,
        user_id=holder.id if isinstance(holder, User) else None,
        forening_id=holder.id if isinstance(holder, Forening) else None,
        leased_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(obj)
    session.flush()
    return obj


def map_turfs(
    session: Session, district_: District, n: int = 2, households: int = 40, knocked: int = 0
) -> list:
    """``n`` turfs stored directly, side by side within the district's box, each with one
    address and a coverage snapshot of ``knocked`` households (turf cutting is not needed)."""
    import uuid

    import shapely
    from shapely.geometry import box

    from api.models import Address, Turf, TurfAddress, TurfStat

    step = (district_.max_lon - district_.min_lon) / n
    turfs = []
    for i in range(n):
        x0 = district_.min_lon + i * step
        part = box(x0, district_.min_lat, x0 + step, district_.max_lat)
        code = f"{district_.code}-{i + 1}"
        turf = Turf(
            code=code,
            district_id=district_.id,
            kommun_id=district_.kommun_id,
            households=households,
            address_count=1,
            walk_length_m=350.0,
            geom_wkb=shapely.to_wkb(part),
            min_lon=part.bounds[0],
            min_lat=part.bounds[1],
            max_lon=part.bounds[2],
            max_lat=part.bounds[3],
            link_code=uuid.uuid4().hex[:12],
        )
        session.add(turf)
        session.flush()
        centre = part.centroid
        address = Address(
            key=f"test:{code}",
            district_id=district_.id,
            kommun_id=district_.kommun_id,
            street="Storgatan",
            number=str(i + 1),
            postcode="83130",
            postort="Östersund",
            lon=centre.x,
            lat=centre.y,
            households=households,
        )
        session.add(address)
        session.flush()
        session.add(TurfAddress(turf_id=turf.id, address_id=address.id, position=1))
        session.add(
            TurfStat(
                turf_id=turf.id,
                doors_knocked=1 if knocked else 0,
                households_knocked=knocked,
                answered=1 if knocked else 0,
                conversations=0,
            )
        )
        session.flush()
        turfs.append(turf)
    return turfs


def addresses_in_district(
    session: Session, district_: District, n: int, *, seed: int = 1, households: int = 1
) -> list:
    """``n`` addresses spread over a square district of ``district()``: streets of ten
    numbers each, ``households`` households at every one."""
    import random

    from api.models import Address

    rng = random.Random(seed)
    minx, miny = district_.min_lon, district_.min_lat
    width, height = district_.max_lon - minx, district_.max_lat - miny
    rows = [
        Address(
            key=f"{district_.code}-{seed}-{i}",
            district_id=district_.id,
            kommun_id=district_.kommun_id,
            street=f"Gata {i // 10}",
            number=str(i % 10 + 1),
            lon=minx + width * (0.02 + 0.96 * rng.random()),
            lat=miny + height * (0.02 + 0.96 * rng.random()),
            households=households,
        )
        for i in range(n)
    ]
    session.add_all(rows)
    session.flush()
    return rows


# -- members ------------------------------------------------------------------------------

_member_no = 0


def member(
    session: Session,
    forening_: Forening,
    joined: str = "2026-04-20",
    *,
    name: str | None = None,
    phone: str | None = "070-123 45 67",
    email: str | None = None,
    status: str = "active",
    new: bool = True,
    **fields: Any,
):
    """A member stored directly, with a follow-up task and a course offer when ``new``."""
    from datetime import date

    from api.members.models import CourseOffer, Member, MemberStatus, MemberTask
    from api.members.service import new_member_rows
    from api.settings import Settings

    global _member_no
    _member_no += 1
    obj = Member(
        member_number=f"M{_member_no:07d}",
        name=name or f"Medlem Nummer{_member_no}",
        phone=phone,
        email=email,
        forening_id=forening_.id,
        kommun_id=forening_.kommun_id,
        joined_on=date.fromisoformat(joined),
        # As the enum: a table model takes a bare string unvalidated, and then
        # serialises it with a warning.
        status=MemberStatus(status),
        **fields,
    )
    session.add(obj)
    session.flush()
    if new:
        task, offer = new_member_rows(
            obj.id, obj.forening_id, obj.kommun_id, obj.joined_on, Settings(_env_file=None)
        )
        session.add(MemberTask(**task))
        session.add(CourseOffer(**offer))
        session.flush()
    return obj


def followup_of(session: Session, member_: Any):
    from api.members.models import MemberTask, TaskKind

    return session.exec(
        select(MemberTask).where(
            MemberTask.member_id == member_.id, MemberTask.kind == TaskKind.followup
        )
    ).one()


def members_world(session: Session, w: Any) -> None:
    """Per side of the authorization world: a new member, a caller with an assignment, a
    call list, a course."""
    from datetime import date

    from api.members.models import CallerAssignment, CallList, Course, MemberTask, TaskKind

    w.M, w.MT, w.CA, w.CL, w.CO, w.caller = [], [], [], [], [], []
    for s in (0, 1):
        m = member(session, w.F[s])
        caller = user(session, Role.volunteer, w.F[s])
        cl = CallList(
            name="Ring alla", kommun_id=w.K[s].id, forening_id=w.F[s].id, ends_on=date(2026, 9, 13)
        )
        session.add(cl)
        session.flush()
        session.add(
            MemberTask(
                kind=TaskKind.call,
                call_list_id=cl.id,
                member_id=m.id,
                forening_id=w.F[s].id,
                kommun_id=w.K[s].id,
            )
        )
        ca = CallerAssignment(user_id=caller.id, forening_id=w.F[s].id)
        co = Course(
            kind="grundkurs_1",
            name="Grundkurs steg 1",
            starts_on=date(2026, 6, 1),
            place="Folkets hus",
            kommun_id=w.K[s].id,
        )
        session.add_all([ca, co])
        session.flush()
        w.M.append(m)
        w.MT.append(followup_of(session, m))
        w.CA.append(ca)
        w.CL.append(cl)
        w.CO.append(co)
        w.caller.append(caller)
