"""Building the nightly snapshots from the contact logs.

One GROUP BY pass over ``contact_log`` fills ``daily_grain`` (day x district x volunteer);
``daily_stat`` (day x kommun/förening/district) is rolled up from that much smaller table.
Both are rebuilt per day as delete + insert inside the caller's transaction, so re-running a
day yields identical rows.
"""

from datetime import date

from sqlalchemy import bindparam, text
from sqlmodel import Session

__all__ = ["rebuild_days"]

_GRAIN = """
INSERT INTO daily_grain
    (day, district_id, user_id, kommun_id, forening_id, contacts, conversations, doors,
     new_members)
SELECT day, district_id, user_id, MIN(kommun_id), MIN(forening_id), COUNT(*),
       SUM(conversations), SUM(CASE WHEN kind = 'door' THEN 1 ELSE 0 END),
       SUM(CASE WHEN new_member THEN 1 ELSE 0 END)
FROM contact_log
WHERE withdrawn_at IS NULL {days}
GROUP BY day, district_id, user_id
"""

_STAT = """
INSERT INTO daily_stat
    (day, unit_kind, unit_id, contacts, conversations, doors, new_members, volunteers)
SELECT day, '{kind}', {column}, SUM(contacts), SUM(conversations), SUM(doors),
       SUM(new_members), COUNT(DISTINCT user_id)
FROM daily_grain
WHERE {column} IS NOT NULL {days}
GROUP BY day, {column}
"""

_UNITS = (("district", "district_id"), ("forening", "forening_id"), ("kommun", "kommun_id"))


def rebuild_days(session: Session, days: list[date] | None) -> int:
    """Recompute the snapshots of ``days`` (None: every day); returns the rows written."""
    if days is not None and not days:
        return 0
    where = "" if days is None else "AND day IN :days"
    params = {} if days is None else {"days": sorted(set(days))}

    def run(sql: str) -> int:
        stmt = text(sql)
        if days is not None:
            stmt = stmt.bindparams(bindparam("days", expanding=True))
        return session.execute(stmt, params).rowcount

    delete_where = "" if days is None else "WHERE day IN :days"
    run(f"DELETE FROM daily_stat {delete_where}")
    run(f"DELETE FROM daily_grain {delete_where}")
    rows = run(_GRAIN.format(days=where))
    for kind, column in _UNITS:
        rows += run(_STAT.format(kind=kind, column=column, days=where))
    return rows
