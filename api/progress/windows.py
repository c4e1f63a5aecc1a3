"""The nightly job's precomputed progress windows (unit_window).

After a night's snapshots, the figures of every kommun and förening of every running
campaign over the snapshot days of the next day's window: a request that day reads one row
per unit and adds the live logs (``service._figures``) instead of summing every day's row
and every volunteer's. A window is keyed by the campaign's first day, the last snapshot day
and the window's last day, so one made for another day, or before a campaign's dates
changed, is never read; rebuilding the snapshots deletes them all.
"""

from datetime import date

from sqlalchemy import delete, insert
from sqlmodel import Session, select

from api.models import Campaign, DailyGrain, UnitWindow
from api.org import tree
from api.progress.service import _SUMMED, _figures, _Window, covered_through, windowed

__all__ = ["save_windows"]

_KINDS = [lv.kind for lv in tree.LEVELS if windowed(lv.kind)]


def save_windows(*, session: Session, today: date) -> int:
    """Replace the unit_window rows by those of ``today``'s windows; returns how many."""
    rows = _windows(session, today)
    # Deleted only now: on SQLite the first write takes the database's write lock, which
    # would keep the volunteers' logging waiting while the windows are computed.
    session.execute(delete(UnitWindow))
    if rows:
        session.execute(insert(UnitWindow), rows)
    return len(rows)


def _windows(session: Session, today: date) -> list[dict]:
    covered = covered_through(session)
    # A snapshot day after today (a log dated ahead) ends some volunteer's last day in
    # unit_people after the window, where a request could no longer tell from it whether
    # the window counted them: then no windows, and requests read the snapshots.
    ahead = session.execute(select(DailyGrain.day).where(DailyGrain.day > today).limit(1))
    if covered is None or ahead.first() is not None:
        return []
    running = session.exec(
        select(Campaign).where(Campaign.starts_on <= today, Campaign.ends_on >= today)
    ).all()
    rows, seen = [], set()
    for campaign in running:  # one statement per campaign and level, not per unit
        w = _Window.of(campaign, today, covered)
        key = dict(zip(("starts_on", "through", "last_day"), w.key, strict=True))
        for kind in _KINDS:
            ids = tree.ids_under(kind, tree.LEVELS[0].kind, [campaign.partidistrikt_id])
            # Two campaigns of one partidistrikt with the same dates share their windows.
            found = [u for u in session.execute(ids).scalars() if (kind, u, *w.key) not in seen]
            if not found:
                continue
            seen.update((kind, u, *w.key) for u in found)
            summed, active = _figures(session, kind, set(found), w, live=False)
            for unit_id in found:
                values = summed.get(unit_id, [0] * 8)
                people, people_30 = active.get(unit_id, (0, 0))
                rows.append(
                    {
                        "unit_kind": kind,
                        "unit_id": unit_id,
                        **key,
                        **dict(zip(_SUMMED, values[:4], strict=True)),
                        **{f"r_{m}": v for m, v in zip(_SUMMED, values[4:], strict=True)},
                        "people": people,
                        "people_30": people_30,
                    }
                )
    return rows
