"""The member register: import from the party's CSV export, scoped reads, and the audit
log every access to member data writes to.

Who sees member data: the leads of a member's units (förening, kommun, partidistrikt), and
callers for the members their tasks name (see api.members.followup). Every read, list and
export is written to ``member_audit`` with the member's id at most."""

import csv
import hashlib
import hmac
import io
import re
import secrets
from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ARRAY, Integer, String, any_, bindparam, func, insert, text, update
from sqlmodel import Session, col, select

from api.auth.scope import Forbidden, Scope
from api.db import conflict_insert
from api.errors import NotFound, Unprocessable
from api.members.models import (
    CourseOffer,
    Member,
    MemberAudit,
    MemberErasure,
    MemberErasureKey,
    MemberStatus,
    MemberTask,
    TaskKind,
)
from api.members.schemas import MemberImportOptions, MemberImportSummary, MemberRead
from api.models import Forening, Kommun, User, utcnow
from api.org import tree
from api.pagination import PageParams
from api.settings import Settings
from api.validation import check_kommun_code, check_name, control_character

__all__ = [
    "audit",
    "audit_per_unit",
    "audit_shown",
    "get_member",
    "import_members",
    "list_members",
    "listed_unit",
    "member_filter",
    "new_member_rows",
    "number_hash",
    "to_read",
    "update_member",
]

_CHUNK = 50_000  # rows per lookup (PostgreSQL: one array; SQLite allows 250,000 variables)
_STATUS = {"active": MemberStatus.active, "left": MemberStatus.left}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{3,38}$")


def audit(
    session: Session,
    scope: Scope,
    action: str,
    *,
    route: str,
    member_id: int | None = None,
    forening_id: int | None = None,
    kommun_id: int | None = None,
    count: int = 1,
) -> None:
    """Append one entry to the member audit log (never any member data but the id)."""
    session.add(
        MemberAudit(
            user_id=None if scope.user is None else scope.user.id,
            action=action,
            member_id=member_id,
            forening_id=forening_id,
            kommun_id=kommun_id,
            count=count,
            route=route[:120],
        )
    )


def audit_shown(
    session: Session,
    scope: Scope,
    action: str,
    *,
    route: str,
    shown: list[tuple[int | None, int, int]],
    unit: tuple[int | None, int | None],
) -> None:
    """Append a list read to the audit log: one entry per member shown (id, förening,
    kommun), or one for the listed ``unit`` (förening, kommun) when nothing was shown."""
    # Per member, so that the leads above each member's units see who listed them, and
    # the member's own export (Art. 15) names every list that showed them.
    user_id = None if scope.user is None else scope.user.id
    at = utcnow()
    rows = [
        {"member_id": m, "forening_id": f, "kommun_id": k, "count": 1} for m, f, k in shown
    ] or [{"member_id": None, "forening_id": unit[0], "kommun_id": unit[1], "count": 0}]
    # One multi-row INSERT: a page of 500 is one statement, not 500 (executemany).
    session.execute(
        insert(MemberAudit).values(
            [
                r | {"at": at, "user_id": user_id, "action": action, "route": route[:120]}
                for r in rows
            ]
        )
    )


def audit_per_unit(
    session: Session, scope: Scope, action: str, *, route: str, units: list[dict[str, Any]]
) -> None:
    """Append one entry per förening of ``units`` (rows with forening_id and kommun_id),
    counting its rows: an import is seen by the leads of every förening it touched."""
    counts = Counter((u["forening_id"], u["kommun_id"]) for u in units)
    for (forening_id, kommun_id), n in sorted(counts.items()):
        audit(
            session,
            scope,
            action,
            route=route,
            forening_id=forening_id,
            kommun_id=kommun_id,
            count=n,
        )


def listed_unit(
    session: Session, scope: Scope, *, forening_id: int | None, kommun_id: int | None
) -> tuple[int | None, int | None]:
    """The förening and kommun a list covered: its filter's, else the caller's own unit
    (None for a district admin's or an operator's whole reach)."""
    if forening_id is None and kommun_id is None:
        if scope.lead_root is not None:
            kind, unit_id = scope.lead_root
            if kind == tree.kind_of(Forening):
                forening_id = unit_id
            elif kind == tree.kind_of(Kommun):
                kommun_id = unit_id
        else:
            forening_id = scope.member_of
    if forening_id is not None:
        found = session.get(Forening, forening_id) if 0 <= forening_id < 2**63 else None
        kommun_id = found.kommun_id if found is not None else kommun_id
    return forening_id, kommun_id


def member_filter(scope: Scope):
    """A WHERE clause keeping the members whose förening the caller leads."""
    return scope.led_filter(tree.kind_of(Forening), Member.forening_id)


def to_read(member: Member) -> MemberRead:
    return MemberRead.model_validate(member, from_attributes=True)


def get_member(*, session: Session, scope: Scope, member_id: int, route: str) -> Member:
    """One member the caller leads (404 for missing and unseen alike), audited as a read."""
    member = session.get(Member, member_id) if 0 <= member_id < 2**63 else None
    if member is None or not scope.leads(member.forening_id, tree.kind_of(Forening)):
        raise NotFound(f"member {member_id} not found among the members you lead")
    audit(
        session,
        scope,
        "read",
        route=route,
        member_id=member.id,
        forening_id=member.forening_id,
        kommun_id=member.kommun_id,
    )
    return member


def list_members(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    forening_id: int | None,
    kommun_id: int | None,
    status: MemberStatus | None,
    route: str,
) -> tuple[list[Member], int]:
    """The members the caller leads, by förening and name; audited as one list read."""
    if not scope.is_lead:
        raise Forbidden("role: only leads see the member register")
    # A filter naming a unit outside the caller's reach is refused, not answered empty.
    if forening_id is not None:
        scope.require_unit(
            tree.kind_of(Forening), forening_id, "forening_id", lead=True, field="forening_id"
        )
    if kommun_id is not None:
        scope.require_unit(
            tree.kind_of(Kommun), kommun_id, "kommun_id", lead=True, field="kommun_id"
        )
    query = select(Member).where(member_filter(scope))
    if forening_id is not None:
        query = query.where(Member.forening_id == forening_id)
    if kommun_id is not None:
        query = query.where(Member.kommun_id == kommun_id)
    if status is not None:
        query = query.where(Member.status == status)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    items = list(
        session.exec(
            query.order_by(Member.forening_id, Member.name, Member.id)
            .limit(page.limit)
            .offset(page.offset)
        )
    )
    audit_shown(
        session,
        scope,
        "list",
        route=route,
        shown=[(m.id, m.forening_id, m.kommun_id) for m in items],
        unit=listed_unit(session, scope, forening_id=forening_id, kommun_id=kommun_id),
    )
    return items, total


def update_member(
    *, session: Session, scope: Scope, member_id: int, do_not_call: bool, route: str
) -> Member:
    """Set a member's do-not-call flag; open call-list entries follow it."""
    member = get_member(session=session, scope=scope, member_id=member_id, route=route)
    member.do_not_call = do_not_call
    member.updated_at = utcnow()
    session.add(member)
    if do_not_call:
        session.execute(
            update(MemberTask)
            .where(
                MemberTask.member_id == member.id,
                MemberTask.kind == TaskKind.call,
                col(MemberTask.closed_at).is_(None),
            )
            .values(
                closed_at=utcnow(),
                skipped="do_not_call",
                claimed_by_user_id=None,
                claim_expires_at=None,
            )
        )
    audit(
        session,
        scope,
        "update",
        route=route,
        member_id=member.id,
        forening_id=member.forening_id,
        kommun_id=member.kommun_id,
    )
    session.flush()
    return member


# -- tombstones of erased members --------------------------------------------------------


def _erasure_key(session: Session, settings: Settings) -> bytes:
    if settings.members_erasure_key:
        return settings.members_erasure_key.encode()
    row = session.get(MemberErasureKey, 1)
    if row is None:
        # Two first erasures at once: one key wins, the other waits for it and reads it.
        session.execute(
            conflict_insert(session, MemberErasureKey)
            .values(id=1, key=secrets.token_hex(32))
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = session.get(MemberErasureKey, 1, populate_existing=True)
    return row.key.encode()


def number_hash(
    *, session: Session, settings: Settings, number: str, key: bytes | None = None
) -> str:
    """The tombstone of a member number: HMAC-SHA256 under the erasure key, in hex (a plain
    hash of a short number is undone by trying every number)."""
    key = key or _erasure_key(session, settings)
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()


# -- import -------------------------------------------------------------------------------


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise ValueError(f"is not a date (YYYY-MM-DD), got {value!r}") from None


def _optional(value: str, pattern: re.Pattern, what: str, max_length: int) -> str | None:
    cleaned = value.strip()
    if not cleaned:
        return None
    if len(cleaned) > max_length:
        raise ValueError(f"is longer than {max_length} characters")
    if control_character(cleaned) or not pattern.match(cleaned):
        raise ValueError(f"is not {what}")
    return cleaned


def new_member_rows(
    member_id: int, forening_id: int, kommun_id: int, joined_on: date, settings: Settings
) -> tuple[dict, dict]:
    """The follow-up task and the course offer a new member gets."""
    task = {
        "kind": TaskKind.followup.value,
        "member_id": member_id,
        "forening_id": forening_id,
        "kommun_id": kommun_id,
        "joined_on": joined_on,
        "due_on": joined_on + timedelta(days=settings.members_contact_days),
        "attempts": 0,
        "created_at": utcnow(),
    }
    offer = {
        "member_id": member_id,
        "forening_id": forening_id,
        "kommun_id": kommun_id,
        "joined_on": joined_on,
        "due_on": joined_on + timedelta(days=settings.members_course_days),
    }
    return task, offer


def import_members(
    *,
    session: Session,
    scope: Scope,
    text: str,
    options: MemberImportOptions,
    settings: Settings,
    today: date,
    dry_run: bool = False,
    route: str = "cli",
) -> MemberImportSummary:
    """Apply the register's CSV export, idempotent by member number: every row, or none if
    any is bad (errors name the line and the column); ``dry_run`` only answers what it
    would do."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    o = options
    required = {
        "member_number": o.member_number_column,
        "name": o.name_column,
        "forening": o.forening_column,
        "joined_on": o.joined_column,
        "status": o.status_column,
    }
    missing = [f"{column} ({role})" for role, column in required.items() if column not in fields]
    if missing:
        raise Unprocessable(
            f"columns: the CSV lacks {', '.join(missing)}; found "
            + (", ".join(fields) or "no header")
        )
    default_kommun = None
    if o.kommun is not None:
        try:
            code = check_kommun_code(o.kommun)
        except ValueError as exc:
            raise Unprocessable(f"kommun: {exc}") from None
        default_kommun = session.exec(select(Kommun).where(Kommun.code == code)).first()
        if default_kommun is None or not scope.leads_kommun(default_kommun.id):
            raise Forbidden(f"kommun: {code} does not exist or is outside your unit")
    has_kommun = o.kommun_column in fields
    has_phone, has_email = o.phone_column in fields, o.email_column in fields

    # Every förening a row may name: those the caller leads (names are unique per kommun).
    led = list(
        session.exec(select(Forening).where(scope.led_filter(tree.kind_of(Forening), Forening.id)))
    )
    by_id = {f.id: f for f in led}
    kommun_codes = dict(session.execute(select(Kommun.code, Kommun.id)).all()) if has_kommun else {}
    by_name: dict[tuple[int, str], Forening] = {(f.kommun_id, f.name.casefold()): f for f in led}
    names_anywhere: dict[str, list[Forening]] = {}
    for f in led:
        names_anywhere.setdefault(f.name.casefold(), []).append(f)

    errors: list[dict[str, Any]] = []
    outside: list[int] = []
    parsed: list[dict[str, Any]] = []
    seen: dict[str, int] = {}

    def fail(line: int, field: str, message: str) -> None:
        # The value is not echoed: it may be a person's name or phone number.
        errors.append({"line": line, "field": field, "message": message})

    rows = 0
    for line, r in enumerate(reader, start=2):
        rows += 1
        if len(errors) >= 1000:
            continue
        number = (r.get(o.member_number_column) or "").strip()
        if not number or len(number) > 40 or control_character(number):
            fail(line, o.member_number_column, "is empty, longer than 40 characters or not text")
            continue
        if number in seen:
            fail(line, o.member_number_column, f"appears again (first on line {seen[number]})")
            continue
        seen[number] = line
        row: dict[str, Any] = {"member_number": number}
        ok = True
        try:
            row["name"] = check_name(r.get(o.name_column) or "")
        except ValueError as exc:
            fail(line, o.name_column, str(exc))
            ok = False
        try:
            row["phone"] = (
                _optional(r.get(o.phone_column) or "", _PHONE, "a phone number", 40)
                if has_phone
                else None
            )
        except ValueError as exc:
            fail(line, o.phone_column, str(exc))
            ok = False
        try:
            row["email"] = (
                _optional(r.get(o.email_column) or "", _EMAIL, "an email address", 320)
                if has_email
                else None
            )
        except ValueError as exc:
            fail(line, o.email_column, str(exc))
            ok = False
        try:
            row["joined_on"] = _parse_date(r.get(o.joined_column) or "")
            if row["joined_on"] > today:
                raise ValueError("lies in the future")
        except ValueError as exc:
            fail(line, o.joined_column, str(exc))
            ok = False
        status = _STATUS.get((r.get(o.status_column) or "").strip().casefold())
        if status is None:
            fail(line, o.status_column, "must be active or left")
            ok = False
        row["status"] = status
        ref = (r.get(o.forening_column) or "").strip()
        forening = None
        if ref.isascii() and ref.isdigit() and len(ref) <= 18:
            forening = by_id.get(int(ref))
            if forening is None and session.get(Forening, int(ref)) is not None:
                outside.append(line)
                continue
        elif ref:
            kommun_id = default_kommun.id if default_kommun else None
            if has_kommun and (r.get(o.kommun_column) or "").strip():
                kommun_id = kommun_codes.get((r.get(o.kommun_column) or "").strip(), -1)
            if kommun_id is not None:
                forening = by_name.get((kommun_id, ref.casefold()))
            elif len(names_anywhere.get(ref.casefold(), [])) == 1:
                forening = names_anywhere[ref.casefold()][0]
        if forening is None:
            fail(
                line,
                o.forening_column,
                "names no förening (id, or name within the kommun) of yours",
            )
            ok = False
        if ok:
            row["forening_id"], row["kommun_id"] = forening.id, forening.kommun_id
            parsed.append(row)
    if rows == 0:
        raise Unprocessable("file: the CSV has no rows")
    if outside:
        lines = ", ".join(map(str, outside[:20]))
        raise Forbidden(f"{o.forening_column}: lines {lines} name föreningar outside your unit")
    if errors:
        raise Unprocessable(
            f"{len(errors)} errors in {rows} rows; nothing was imported", details=errors
        )
    touched = {r["kommun_id"] for r in parsed} | ({default_kommun.id} if default_kommun else set())
    with session.begin_nested() as attempt:
        summary = _apply_import(
            session,
            scope,
            parsed,
            lines=seen,
            kommun_ids=sorted(touched),
            settings=settings,
            today=today,
            route=route,
        )
        if dry_run:
            attempt.rollback()
    if dry_run:
        # Nothing was written, but the register was read and compared: that is a read.
        audit_per_unit(session, scope, "import_dry_run", route=route, units=parsed)
        session.flush()
    return summary.model_copy(update={"dry_run": dry_run})


# user_id among them: a volunteer account made after the member was imported is linked by
# the next import, as one made before.
_COMPARED = (
    "name",
    "phone",
    "email",
    "forening_id",
    "kommun_id",
    "joined_on",
    "status",
    "user_id",
)


def _among(column, values: list, session: Session):
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter however many
    values (an expanded IN of thousands costs more to build and parse than to run)."""
    if session.get_bind().dialect.name == "postgresql":
        item = Integer() if values and isinstance(values[0], int) else String()
        return column == any_(bindparam(None, values, type_=ARRAY(item)))
    return column.in_(values)


def _bulk_insert(session: Session, model, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of one shape: COPY on PostgreSQL (a 100,000-member register in
    seconds; multi-row INSERTs spend most of their time building and parsing the statement),
    one executemany elsewhere."""
    if not rows:
        return
    table = model.__table__
    columns = list(rows[0])
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    raw = connection.connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


_LISTED = 100  # ids and lines a summary lists at most


def _tombstones(session: Session, settings: Settings, numbers: list[str]) -> dict[str, date]:
    """The erasure day of each of ``numbers`` that was erased before."""
    if not numbers or session.exec(select(MemberErasure.id).limit(1)).first() is None:
        return {}
    key = _erasure_key(session, settings)
    by_hash = {
        number_hash(session=session, settings=settings, number=n, key=key): n for n in numbers
    }
    hashes = list(by_hash)
    found: dict[str, date] = {}
    for i in range(0, len(hashes), _CHUNK):
        for h, day in session.execute(
            select(MemberErasure.number_hash, MemberErasure.erased_on).where(
                _among(MemberErasure.number_hash, hashes[i : i + _CHUNK], session)
            )
        ).all():
            found[by_hash[h]] = day
    return found


def _missing(
    session: Session, scope: Scope, kommun_ids: list[int], in_file: set[str], matched: int
) -> tuple[int, list[int]]:
    """Members of the file's kommuner (that the caller leads) whom the file lacks: counted,
    and the first ids listed; never deleted (a register export may be partial)."""
    where = (col(Member.kommun_id).in_(kommun_ids), member_filter(scope))
    total = session.exec(select(func.count()).select_from(Member).where(*where)).one()
    if total <= matched:
        return 0, []
    # Only when some are missing: the file's kommuner read once more, by id and number.
    rows = session.execute(
        select(Member.id, Member.member_number).where(*where).order_by(Member.id)
    ).all()
    ids = [i for i, number in rows if number not in in_file]
    return len(ids), ids[:_LISTED]


def _apply_import(
    session: Session,
    scope: Scope,
    parsed: list[dict[str, Any]],
    *,
    lines: dict[str, int],
    kommun_ids: list[int],
    settings: Settings,
    today: date,
    route: str,
) -> MemberImportSummary:
    now = utcnow()
    existing: dict[str, tuple] = {}
    numbers = [r["member_number"] for r in parsed]
    for i in range(0, len(numbers), _CHUNK):
        found = session.execute(
            select(Member.member_number, Member.id, *(getattr(Member, c) for c in _COMPARED)).where(
                _among(Member.member_number, numbers[i : i + _CHUNK], session)
            )
        ).all()
        existing.update((row[0], row[1:]) for row in found)
    # Before the file changes any: how many of the file's kommuner's members it names.
    kommun_at = 1 + _COMPARED.index("kommun_id")
    matched = sum(1 for old in existing.values() if old[kommun_at] in kommun_ids)
    missing, missing_ids = _missing(
        session, scope, kommun_ids, {r["member_number"] for r in parsed}, matched
    )
    erased = _tombstones(
        session,
        settings,
        [r["member_number"] for r in parsed if r["member_number"] not in existing],
    )
    # Volunteer accounts of the same people, by email regardless of case.
    emails = sorted({r["email"].casefold() for r in parsed if r.get("email")})
    users: dict[str, int] = {}
    for i in range(0, len(emails), _CHUNK):
        users.update(
            session.execute(
                select(func.lower(User.email), User.id).where(
                    _among(func.lower(User.email), emails[i : i + _CHUNK], session)
                )
            ).all()
        )
    creates, updates = [], []
    erased_lines: list[int] = []
    left = unchanged = linked = 0
    new_since = today - timedelta(days=settings.members_new_days)
    for r in parsed:
        old = existing.get(r["member_number"])
        erased_on = erased.get(r["member_number"]) if old is None else None
        if erased_on is not None and r["joined_on"] <= erased_on:
            # The membership the party asked to erase, still in the register: not brought
            # back, and its follow-up not created (and counted) a second time. A membership
            # begun after the erasure is a new one, imported as any other.
            erased_lines.append(lines[r["member_number"]])
            continue
        r["user_id"] = users.get(r["email"].casefold()) if r.get("email") else None
        linked += r["user_id"] is not None
        if old is None:
            r["left_on"] = today if r["status"] == MemberStatus.left else None
            left += r["status"] == MemberStatus.left
            creates.append(
                r
                | {"status": r["status"].value, "do_not_call": False}
                | {"created_at": now, "updated_at": now}
            )
            continue
        member_id, *values = old
        before = dict(zip(_COMPARED, values, strict=True))
        if all(before[c] == r[c] for c in _COMPARED):
            unchanged += 1
            continue
        change = {"id": member_id, **r, "updated_at": now}
        if r["status"] == MemberStatus.left and before["status"] != MemberStatus.left:
            change["left_on"] = today
            left += 1
        elif r["status"] == MemberStatus.active:
            change["left_on"] = None
        updates.append(change)
    _bulk_insert(session, Member, creates)
    created_ids: list[tuple[int, dict]] = []
    for i in range(0, len(creates), _CHUNK):
        batch = creates[i : i + _CHUNK]
        by_number = dict(
            session.execute(
                select(Member.member_number, Member.id).where(
                    _among(Member.member_number, [r["member_number"] for r in batch], session)
                )
            ).all()
        )
        created_ids.extend((by_number[r["member_number"]], r) for r in batch)
    if updates:
        session.execute(update(Member), updates)
    # New members who joined recently and are still members get a follow-up and an offer.
    candidates = [(mid, r) for mid, r in created_ids] + [(u["id"], u) for u in updates]
    candidates = [
        (mid, r)
        for mid, r in candidates
        if r["status"] == MemberStatus.active and r["joined_on"] >= new_since
    ]
    has_task: set[int] = set()
    updated_ids = [u["id"] for u in updates]
    for i in range(0, len(updated_ids), _CHUNK):
        has_task.update(
            session.exec(
                select(MemberTask.member_id).where(
                    MemberTask.kind == TaskKind.followup,
                    _among(MemberTask.member_id, updated_ids[i : i + _CHUNK], session),
                )
            )
        )
    tasks, offers = [], []
    for mid, r in candidates:
        if mid in has_task:
            continue
        task, offer = new_member_rows(
            mid, r["forening_id"], r["kommun_id"], r["joined_on"], settings
        )
        tasks.append(task)
        offers.append(offer)
    _bulk_insert(session, MemberTask, tasks)
    _bulk_insert(session, CourseOffer, offers)
    if len(tasks) > 1000 and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics now, not whenever autovacuum comes by: with the old ones the
        # planner takes a kommun's thousands of new follow-ups for one row. (Members are
        # only ever looked up by key, so their table needs none.)
        for table in ("member_task", "course_offer"):
            session.execute(text(f"ANALYZE {table}"))
    audit_per_unit(session, scope, "import", route=route, units=parsed)
    session.flush()
    return MemberImportSummary(
        dry_run=False,
        rows=len(parsed),
        created=len(creates),
        updated=len(updates),
        unchanged=unchanged,
        left=left,
        new_members=len(tasks),
        linked_volunteers=linked,
        erased=len(erased_lines),
        erased_lines=erased_lines[:_LISTED],
        missing_from_file=missing,
        missing_member_ids=missing_ids,
    )
