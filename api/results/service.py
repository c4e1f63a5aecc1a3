"""Election results per valdistrikt as a baseline, and the district priority ranking.

Priority formula (documented in README.md): ``eligible × (1 − turnout) × share``, where
``share`` is the party's votes / valid votes in the district. It estimates how many of the
party's likely voters stayed home: the doors most worth knocking on to raise turnout.
"""

import csv
import io
import json
import re
from typing import Any

from sqlalchemy import delete, func, insert
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.errors import NotFound, Unprocessable
from api.models import District, ElectionResult, Kommun, utcnow
from api.results.schemas import PriorityRow, ResultsImportSummary
from api.validation import control_character

__all__ = [
    "PARTY_ALIASES",
    "district_priorities",
    "import_results",
    "kommun_priorities",
    "latest_election",
    "parse_results",
    "party_votes",
]

_CODES = ("LÄNSKOD", "KOMMUNKOD", "VALKRETSKOD", "VALDISTRIKTSKOD")
_COUNTS = {"RÖSTBERÄTTIGADE": "eligible", "RÖSTANDE": "voted", "RÖSTER GILTIGA": "valid"}
_TURNOUT = "VALDELTAGANDE"
_REQUIRED = (*_CODES, *_COUNTS)
# Columns that are not a party's votes: names of the areas, blank and invalid ballots.
_NOT_PARTY = re.compile(r"^(.*NAMN|BLANKA?|OGILTIGA.*|RÖSTER OGILTIGA.*|.*PROCENT.*)$")
# Party abbreviations to the column names Valmyndigheten's files have used for them.
PARTY_ALIASES: dict[str, tuple[str, ...]] = {
    "S": ("S", "SOCIALDEMOKRATERNA", "ARBETAREPARTIET-SOCIALDEMOKRATERNA"),
    "M": ("M", "MODERATERNA", "MODERATA SAMLINGSPARTIET"),
    "SD": ("SD", "SVERIGEDEMOKRATERNA"),
    "C": ("C", "CENTERPARTIET"),
    "V": ("V", "VÄNSTERPARTIET"),
    "KD": ("KD", "KRISTDEMOKRATERNA"),
    "L": ("L", "FP", "LIBERALERNA", "FOLKPARTIET LIBERALERNA"),
    "MP": ("MP", "MILJÖPARTIET", "MILJÖPARTIET DE GRÖNA"),
}
_MAX_ELECTION = 100


def _whole(value: str, line: int, column: str) -> int:
    text = value.strip().replace(" ", "").replace("\u00a0", "")
    if not text.isascii() or not text.isdigit():
        raise Unprocessable(
            f"{column}: line {line} holds {value!r}, not a whole number; nothing was written",
            details={"line": line, "column": column, "value": value},
        )
    return int(text)


def _district_code(lan: int, kommun: int, district: int) -> str:
    # Kommun codes are two digits within the län; a file giving the full four-digit kommun
    # code (e.g. 180 for 0180) already holds the län.
    head = f"{kommun:04}" if kommun >= 100 else f"{lan:02}{kommun:02}"
    return f"{head}{district:04}"


def parse_results(raw: bytes) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Rows of a Valmyndigheten per-valdistrikt result file.

    Returns
    -------
    (rows, collection_rows, parties)
        ``rows`` are dicts with ``code``, ``line``, ``eligible``, ``voted``, ``valid``,
        ``turnout`` and ``votes``; ``collection_rows`` counts the skipped
        uppsamlingsdistrikt rows.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(
            f"file: not UTF-8 text (byte {exc.start}); nothing was written"
        ) from None
    first = text.split("\n", 1)[0]
    sep = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise Unprocessable("file: the CSV is empty; nothing was written") from None
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise Unprocessable(
            f"columns: {', '.join(missing)} not in the file; its columns are "
            f"{', '.join(header) or 'none'}; nothing was written",
            details={"missing": missing},
        )
    known = {*_REQUIRED, _TURNOUT}
    parties = [h for h in header if h and h not in known and not _NOT_PARTY.match(h.upper())]
    position = {h: i for i, h in enumerate(header)}
    rows: list[dict[str, Any]] = []
    collection = 0
    seen: dict[str, int] = {}
    for line, record in enumerate(reader, start=2):
        if not record or all(not v.strip() for v in record):
            continue
        if len(record) != len(header):
            raise Unprocessable(
                f"file: line {line} has {len(record)} fields, the header {len(header)}; "
                "nothing was written",
                details={"line": line},
            )
        lan, kommun, _, district = (_whole(record[position[c]], line, c) for c in _CODES)
        if district == 0:
            collection += 1
            continue
        code = _district_code(lan, kommun, district)
        if code in seen:
            raise Unprocessable(
                f"VALDISTRIKTSKOD: line {line} repeats district {code} (first on line "
                f"{seen[code]}); nothing was written",
                details={"line": line, "code": code},
            )
        seen[code] = line
        counts = {key: _whole(record[position[c]], line, c) for c, key in _COUNTS.items()}
        votes = {p: _whole(record[position[p]] or "0", line, p) for p in parties}
        for column, key in _COUNTS.items():
            if key != "eligible" and counts[key] > counts["eligible"]:
                raise Unprocessable(
                    f"{column}: line {line} holds more than RÖSTBERÄTTIGADE; nothing was written",
                    details={"line": line, "column": column},
                )
        counts["turnout"] = counts["voted"] / counts["eligible"] if counts["eligible"] else 0.0
        rows.append({"code": code, "line": line, "votes": votes, **counts})
    if not rows and not collection:
        raise Unprocessable("file: the CSV has no rows; nothing was written")
    return rows, collection, parties


def import_results(
    *, session: Session, election: str, raw: bytes, dry_run: bool = False
) -> ResultsImportSummary:
    """Store one election's results per district, replacing that election's earlier rows."""
    election = election.strip()
    bad = control_character(election)
    if not election or len(election) > _MAX_ELECTION or bad:
        raise Unprocessable(
            f"election: give a name of 1 to {_MAX_ELECTION} printable characters, "
            'e.g. "Riksdag 2022"'
        )
    rows, collection, parties = parse_results(raw)
    codes = [r["code"] for r in rows]
    ids: dict[str, int] = {}
    for start in range(0, len(codes), 1000):
        chunk = codes[start : start + 1000]
        ids.update(
            session.exec(
                select(District.code, District.id).where(col(District.code).in_(chunk))
            ).all()
        )
    unknown = sorted(c for c in codes if c not in ids)
    replaced = session.exec(
        select(func.count()).select_from(ElectionResult).where(ElectionResult.election == election)
    ).one()
    now = utcnow()
    values = [
        {
            "election": election,
            "district_id": ids[r["code"]],
            "eligible": r["eligible"],
            "voted": r["voted"],
            "valid": r["valid"],
            "turnout": r["turnout"],
            "votes": json.dumps(r["votes"], ensure_ascii=False),
            "imported_at": now,
        }
        for r in rows
        if r["code"] in ids
    ]
    if not dry_run:
        session.execute(delete(ElectionResult).where(ElectionResult.election == election))
        for start in range(0, len(values), 1000):
            session.execute(insert(ElectionResult), values[start : start + 1000])
        session.flush()
    return ResultsImportSummary(
        election=election,
        rows=len(rows),
        districts_matched=len(values),
        codes_unknown=unknown,
        collection_rows_skipped=collection,
        parties=parties,
        replaced=replaced,
        dry_run=dry_run,
    )


def party_votes(votes: dict[str, int], party: str) -> tuple[str, int] | None:
    """The column and votes of ``party`` (an abbreviation like "S", or a column name)."""
    wanted = party.strip().upper()
    names = {wanted, *PARTY_ALIASES.get(wanted, ())}
    for column, count in votes.items():
        if column.strip().upper() in names:
            return column, count
    return None


def latest_election(session: Session) -> str | None:
    """The election imported last."""
    return session.exec(
        select(ElectionResult.election).order_by(col(ElectionResult.imported_at).desc()).limit(1)
    ).first()


def district_priorities(
    *, session: Session, district_ids: list[int], election: str, party: str
) -> dict[int, tuple[float, int]]:
    """``{district id: (priority, rank)}`` among ``district_ids`` with a result in
    ``election``; rank 1 is the highest priority (ties by district code)."""
    scored: list[tuple[float, str, int]] = []
    for start in range(0, len(district_ids), 1000):
        chunk = district_ids[start : start + 1000]
        for result, code in session.exec(
            select(ElectionResult, District.code)
            .join(District, District.id == ElectionResult.district_id)
            .where(ElectionResult.election == election)
            .where(col(ElectionResult.district_id).in_(chunk))
        ):
            scored.append((_score(result, party)[0], code, result.district_id))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return {district_id: (p, rank) for rank, (p, _, district_id) in enumerate(scored, start=1)}


def _score(result: ElectionResult, party: str) -> tuple[float, float, str]:
    votes = json.loads(result.votes)
    found = party_votes(votes, party)
    column, count = found if found else (party, 0)
    share = count / result.valid if result.valid else 0.0
    return result.eligible * (1.0 - result.turnout) * share, share, column


def kommun_priorities(
    *, session: Session, scope: Scope, kommun_code: str, election: str | None, party: str
) -> list[PriorityRow]:
    """A kommun's districts ranked by priority in ``election`` (default: the latest)."""
    from api.addresses.service import household_estimate

    kommun = session.exec(select(Kommun).where(Kommun.code == kommun_code)).first()
    if kommun is None:
        raise NotFound(f"kommun {kommun_code} not found")
    scope.require(scope.leads_kommun(kommun.id), f"kommun {kommun_code}")
    election = election or latest_election(session)
    if election is None:
        return []
    found = session.exec(
        select(ElectionResult, District)
        .join(District, District.id == ElectionResult.district_id)
        .where(District.kommun_id == kommun.id)
        .where(ElectionResult.election == election)
    ).all()
    if (
        not found
        and not session.exec(
            select(ElectionResult.id).where(ElectionResult.election == election).limit(1)
        ).first()
    ):
        raise NotFound(f"election {election!r} has no results; import them first")
    estimates = household_estimate(session, [d.id for _, d in found])
    rows = []
    for result, district in found:
        priority, share, column = _score(result, party)
        rows.append((priority, district, result, share, column))
    rows.sort(key=lambda r: (-r[0], r[1].code))
    return [
        PriorityRow(
            rank=rank,
            district_code=district.code,
            district_name=district.name,
            eligible=result.eligible,
            turnout=round(result.turnout, 4),
            party=column,
            party_share=round(share, 4),
            priority=round(priority, 1),
            households_estimate=estimates.get(district.id),
        )
        for rank, (priority, district, result, share, column) in enumerate(rows, start=1)
    ]
