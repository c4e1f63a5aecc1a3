"""POST /contacts's common case in one statement, on PostgreSQL: a volunteer or förening
lead with a live token logs a new record by district code, in their förening's kommun (the
reach Scope.sees_district gives them), with active topics, within the time window. The
statement runs over arrays of such records from concurrent requests (api.fastdb.PgPool).
Any other record inserts nothing here and takes the general path (api.contacts.service),
which also gives every refusal its message.

Keeping the two paths' rules together, both ways:
- one place where one can be: the time window, the row and the body hash come from
  api.contacts.records, the idle limit from api.auth.service.token_idle_cutoff;
- the checks the statement makes again in SQL (token not revoked, not idle and known, user
  active, role, district in the förening's kommun, topics active) are held to the general
  path by one table of cases in tests/test_contacts.py (each rule on both sides of its
  limit), run through both paths: it fails when they answer differently. A rule added to
  either path gets a row there.
"""

from datetime import datetime

from api.auth.service import LAST_USED_GRANULARITY, hash_token, token_idle_cutoff
from api.contacts.records import COLUMNS, body_hash, new_row, time_window
from api.contacts.schemas import ContactIn, ContactResult
from api.fastdb import FastDb
from api.models import Role
from api.org import tree
from api.settings import Settings

__all__ = ["log_contact_fast"]

# The roles whose reach for logging is their förening's kommun and nothing more
# (Scope.home_kommun_ids); for leads of a kommun or partidistrikt the general path works it out.
_ROLES = (Role.volunteer, Role.forening_lead)

_FAST_INPUT = {
    # The row's own columns; the statement finds the author's and the district's ids.
    **{c: t for c, t in COLUMNS.items() if not c.endswith("_id")},
    "token_hash": "text",
    "idle_since": "timestamptz",
    "touch_before": "timestamptz",
    "district_code": "text",
    "topics": "text",  # comma-separated: one array element per record
}
_FAST_LOG = f"""
WITH input AS (
    SELECT * FROM unnest({", ".join(f"%({c})s::{t}[]" for c, t in _FAST_INPUT.items())})
        AS i({", ".join(_FAST_INPUT)})
), fit AS (
    SELECT i.*, t.id AS device_id, t.last_used_at, u.id AS user_id, f.id AS forening_id,
           d.id AS district_id, d.kommun_id
    FROM input i
    JOIN device_token t ON t.token_hash = i.token_hash
    JOIN app_user u ON u.id = t.user_id
    JOIN forening f ON f.id = u.unit_id
    JOIN district d ON d.code = i.district_code AND d.kommun_id = f.kommun_id
    WHERE t.revoked_at IS NULL AND t.last_used_at >= i.idle_since AND u.is_active
      AND u.unit_kind = '{tree.MEMBER_KIND.value}'
      AND u.role IN ({", ".join(f"'{role.value}'" for role in _ROLES)})
      AND (SELECT count(*) FROM topic
           WHERE code = ANY(string_to_array(i.topics, ',')) AND active)
          = cardinality(string_to_array(i.topics, ','))
), added AS (
    INSERT INTO contact_log ({", ".join(COLUMNS)})
    SELECT {", ".join(COLUMNS)} FROM fit ORDER BY client_uuid
    ON CONFLICT (client_uuid) DO NOTHING
    RETURNING client_uuid, id
), linked AS (
    INSERT INTO contact_topic (contact_id, topic)
    SELECT added.id, topic FROM added JOIN input USING (client_uuid)
    CROSS JOIN unnest(string_to_array(input.topics, ',')) AS topic
), used AS (
    SELECT device_id, max(received_at) AS at, min(touch_before) AS stale_before
    FROM fit GROUP BY device_id
), touched AS (
    -- As in the general path: a device row that another request is writing is skipped, and
    -- the staleness is checked again on the row as it is when locked.
    UPDATE device_token SET last_used_at = used.at FROM used
    WHERE device_token.id = used.device_id AND device_token.last_used_at < used.stale_before
      AND device_token.id IN (
        SELECT id FROM device_token WHERE id IN (SELECT device_id FROM used)
        FOR UPDATE SKIP LOCKED
      )
)
SELECT client_uuid, id FROM added
"""


async def log_contact_fast(
    *, db: FastDb, settings: Settings, raw_token: str, record: ContactIn, now: datetime
) -> ContactResult | None:
    """Log a plain new record in a statement shared with others, or None for the general path."""
    earliest, latest = time_window(settings, now)
    # A record naming a turf is checked against its district on the general path.
    if record.location is not None or record.turf is not None:
        return None
    if not earliest <= record.occurred_at <= latest:
        return None
    row = new_row(record, body_hash=body_hash(record), settings=settings, now=now)
    row.update(
        token_hash=hash_token(raw_token),
        idle_since=token_idle_cutoff(settings=settings, now=now),
        touch_before=now - LAST_USED_GRANULARITY,
        district_code=record.district_code,
        # Safe: a topic code has no commas (api.topics.schemas.TopicCode).
        topics=",".join(sorted(set(record.topics))),
    )
    found = await db.fetch_grouped(_FAST_LOG, row, key="client_uuid")
    if found is None:
        return None
    return ContactResult(index=0, client_uuid=record.client_uuid, status="created", id=found[1])
