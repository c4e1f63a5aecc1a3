"""Who may call what: for every route, the status each role gets for a resource in its own
unit and for one in another unit. The authorization tests are generated from this table
(tests/test_authz.py), and they fail when a route of the app is missing from it.

Own unit means the caller's unit or something below it (a district admin's partidistrikt,
a kommun lead's kommun, a förening's lead or volunteer and their förening); for a contact
log, the volunteer's own logs. Scope is enforced in the services (api.auth.scope): this
table states the expected outcome, it does not grant anything itself.
"""

from typing import NamedTuple

__all__ = ["ACCESS", "ROLES", "TARGETS_BY_KIND", "Expect"]

# A caller is a volunteer of a förening with caller assignments (its new-member follow-ups
# and one of its call lists): a volunteer everywhere else, who also works member tasks.
ROLES = ("volunteer", "forening_lead", "kommun_lead", "district_admin", "caller")


class Expect(NamedTuple):
    anonymous: int
    # (own unit, other unit) for each role, in the order of ROLES
    volunteer: tuple[int, int]
    forening_lead: tuple[int, int]
    kommun_lead: tuple[int, int]
    district_admin: tuple[int, int]
    caller: tuple[int, int]


def _all(own: int, other: int | None = None, anonymous: int = 401) -> Expect:
    pair = (own, own if other is None else other)
    return Expect(anonymous, pair, pair, pair, pair, pair)


def _by(
    vol: tuple, flead: tuple, klead: tuple, admin: tuple, caller: tuple | None = None
) -> Expect:
    """Per role; a caller is answered as a volunteer unless ``caller`` says otherwise."""
    return Expect(401, vol, flead, klead, admin, vol if caller is None else caller)


NO = (403, 403)
GONE = (404, 404)

# The own-unit requests of a volunteer's contact, lease and account name the volunteer's
# own; for the caller (another volunteer of the same förening) they are someone else's,
# which a volunteer neither sees nor changes: those rows say so in their caller column.

ACCESS: dict[tuple[str, str], Expect] = {
    ("GET", "/health"): _all(200, anonymous=200),
    # accounts
    ("POST", "/auth/code"): _all(202, anonymous=202),
    ("POST", "/auth/token"): _all(400, anonymous=400),  # requested with a wrong code
    ("GET", "/me"): _all(200),
    ("GET", "/me/devices"): _all(200),
    ("PUT", "/me/preferences"): _all(200),
    ("DELETE", "/me/devices/{device_id}"): _all(200, 404),
    ("POST", "/users"): _by(NO, (201, 403), (201, 403), (201, 403)),
    ("GET", "/users"): _all(200),
    ("GET", "/users/{user_id}"): _all(200, 403)._replace(caller=NO),
    ("GET", "/users/{user_id}/devices"): _by(NO, (200, 403), (200, 403), (200, 403)),
    ("POST", "/users/{user_id}/devices/revoke"): _by(NO, (200, 403), (200, 403), (200, 403)),
    # organisation
    ("GET", "/partidistrikt"): _all(200),
    ("POST", "/partidistrikt"): _all(403),  # operators create them with the knacka command
    ("GET", "/partidistrikt/{partidistrikt_id}"): _by(NO, NO, NO, (200, 403)),
    ("PATCH", "/partidistrikt/{partidistrikt_id}"): _by(NO, NO, NO, (200, 403)),
    ("GET", "/kommuner"): _all(200),
    ("POST", "/kommuner"): _by(NO, NO, NO, (201, 403)),
    ("GET", "/kommuner/{code}"): _by(NO, NO, (200, 403), (200, 403)),
    ("PATCH", "/kommuner/{code}"): _by(NO, NO, NO, (200, 403)),
    ("GET", "/foreningar"): _all(200),
    ("POST", "/foreningar"): _by(NO, NO, (201, 403), (201, 403)),
    ("GET", "/foreningar/{forening_id}"): _all(200, 403),
    ("PATCH", "/foreningar/{forening_id}"): _by(NO, NO, (200, 403), (200, 403)),
    # districts: volunteers and förening leads read their kommun's districts
    ("POST", "/districts/import"): _by(NO, NO, (200, 403), (200, 403)),
    ("GET", "/districts"): _all(200),
    ("GET", "/districts.geojson"): _all(200),
    ("GET", "/districts/coverage"): _all(200),
    ("POST", "/districts/assignments"): _by(NO, NO, (200, 403), (200, 403)),
    ("GET", "/districts/{code}"): _all(200, 403),
    ("GET", "/districts/{code}/geojson"): _all(200, 403),
    ("PUT", "/districts/{code}/forening"): _by(NO, NO, (200, 403), (200, 403)),
    ("GET", "/districts/{code}/assignments"): _all(200, 403),
    ("GET", "/kommuner/{code}/uncovered-districts"): _by(NO, NO, (200, 403), (200, 403)),
    # contacts: logging is open to all in their kommun; a log is seen by its author and leads
    ("POST", "/contacts"): _all(201, 403),
    ("POST", "/contacts/batch"): _all(200),  # per-record "forbidden" inside the 200
    ("GET", "/contacts"): _all(200),
    ("GET", "/contacts/{contact_id}"): _all(200, 404)._replace(caller=GONE),
    ("PATCH", "/contacts/{contact_id}"): _by((200, 404), (403, 404), (403, 404), (403, 404), GONE),
    ("POST", "/contacts/{contact_id}/withdraw"): _all(200, 404)._replace(caller=GONE),
    ("GET", "/contacts/{contact_id}/audit"): _all(200, 404)._replace(caller=GONE),
    # campaigns, targets and progress (the request's unit is a förening of the campaign)
    ("GET", "/campaigns"): _all(200),
    ("POST", "/campaigns"): _by(NO, NO, NO, (201, 403)),
    ("GET", "/campaigns/{campaign_id}"): _all(200, 403),
    ("GET", "/campaigns/{campaign_id}/targets"): _all(200, 403),
    # (the request sets a förening's target; TARGETS_BY_KIND has every kind)
    ("PUT", "/campaigns/{campaign_id}/targets"): _by(NO, NO, (200, 403), (200, 403)),
    ("POST", "/campaigns/{campaign_id}/apportion"): _by(NO, NO, (200, 403), (200, 403)),
    # a unit outside the caller's reach is answered as if it did not exist
    ("GET", "/campaigns/{campaign_id}/progress/{unit_kind}/{unit}"): _all(200, 404),
    ("GET", "/campaigns/{campaign_id}/progress/{unit_kind}/{unit}/children"): _all(200, 404),
    ("GET", "/campaigns/{campaign_id}/export"): _all(200, 403),
    # addresses and election results (the address import names the caller's kommun)
    ("POST", "/addresses/import"): _by(NO, NO, (200, 403), (200, 403)),
    ("GET", "/districts/{code}/addresses"): _all(200, 404),
    ("PATCH", "/addresses/{address_id}"): _by((403, 404), (200, 404), (200, 404), (200, 404)),
    ("GET", "/kommuner/{code}/priorities"): _by(NO, NO, (200, 403), (200, 403)),
    ("GET", "/topics"): _all(200),
    # the topic list is shared by every partidistrikt: operators change it (knacka topic)
    ("POST", "/topics"): _all(403),
    ("PATCH", "/topics/{code}"): _all(403),
    # the volunteers' app: its files hold no data and are open to anyone; a turf's doors
    # are read by whoever sees the turf (a volunteer: their kommun's turfs)
    ("GET", "/app/"): _all(200, anonymous=200),
    ("GET", "/app/t/{link_code}"): _all(200, anonymous=200),
    ("GET", "/app/manifest.webmanifest"): _all(200, anonymous=200),
    ("GET", "/app/sw.js"): _all(200, anonymous=200),
    ("GET", "/app/static/{name}"): _all(200, anonymous=200),
    ("GET", "/app/api/turfs/{code}/doors"): _all(200, 404),
    # turfs: members read their kommun's turfs (another kommun's are answered as missing);
    # leads of the turf's district assign them; members of its kommun claim a free one
    ("GET", "/turfs"): _all(200, 403),
    ("GET", "/me/turfs"): _all(200),
    ("GET", "/turfs/{code}"): _all(200, 404),
    ("POST", "/turfs/{code}/lease"): _by((403, 404), (201, 404), (201, 404), (201, 404)),
    ("DELETE", "/turfs/{code}/lease"): _all(200, 404)._replace(caller=(403, 404)),
    ("POST", "/turfs/claim/{link_code}"): _by((201, 404), (201, 404), (403, 404), (403, 404)),
    ("GET", "/turfs/{code}/qr.svg"): _all(200, 404),
    ("GET", "/turfs/{code}/walklist.csv"): _all(200, 404),
    ("GET", "/turfs/{code}/walklist"): _all(200, 404),
    # the leads' map: the page and its files need no token (it signs in itself); its data
    # is the caller's scope (a campaign or unit of another partidistrikt: 403/404)
    ("GET", "/karta"): _all(200, anonymous=200),
    ("GET", "/karta/static/{path}"): _all(200, anonymous=200),
    ("GET", "/map/districts.geojson"): _all(200, 403),
    ("GET", "/map/turfs/{code}/addresses.geojson"): _all(200, 404),
    ("GET", "/map/outlines.geojson"): _all(200),
    ("GET", "/map/chart.png"): _all(200, 404),
    # turf cutting: whoever leads the district (its förening, kommun or partidistrikt)
    ("POST", "/turfs/cut"): _by(NO, (200, 403), (200, 403), (200, 403)),
    # members (GDPR Art. 9 data): leads of the member's units; callers see the tasks they
    # work and nothing of the register; a member outside reach is 404. List requests name
    # the unit they ask about (the own förening, or the other one), and a unit outside the
    # caller's reach is refused rather than answered empty.
    ("POST", "/members/import"): _by(NO, NO, (200, 403), (200, 403), NO),
    ("GET", "/members"): _by(NO, (200, 403), (200, 403), (200, 403), NO),
    ("GET", "/members/followups"): _by(NO, (200, 403), (200, 403), (200, 403), (200, 403)),
    ("GET", "/members/audit"): _by(NO, (200, 403), (200, 403), (200, 403), NO),
    ("GET", "/members/{member_id}"): _by(
        (404, 404), (200, 404), (200, 404), (200, 404), (404, 404)
    ),
    ("PATCH", "/members/{member_id}"): _by(
        (404, 404), (200, 404), (200, 404), (200, 404), (404, 404)
    ),
    ("GET", "/members/{member_id}/export"): _by(
        (404, 404), (200, 404), (200, 404), (200, 404), (404, 404)
    ),
    ("POST", "/members/{member_id}/erase"): _by(NO, NO, (200, 404), (200, 404), NO),
    ("POST", "/member-tasks/{task_id}/claim"): _by(
        (404, 404), (200, 404), (200, 404), (200, 404), (200, 404)
    ),
    ("POST", "/member-tasks/{task_id}/outcome"): _by(  # outcome before a claim: 409
        (404, 404), (409, 404), (409, 404), (409, 404), (409, 404)
    ),
    ("GET", "/callers"): _by(NO, (200, 403), (200, 403), (200, 403), NO),
    ("POST", "/callers"): _by(NO, (201, 403), (201, 403), (201, 403), NO),
    ("DELETE", "/callers/{assignment_id}"): _by(
        (404, 404), (204, 404), (204, 404), (204, 404), (404, 404)
    ),
    ("POST", "/call-lists"): _by(NO, (201, 403), (201, 403), (201, 403), NO),
    ("GET", "/call-lists/{call_list_id}"): _by(
        (404, 404), (200, 404), (200, 404), (200, 404), (200, 404)
    ),
    ("GET", "/call-lists/{call_list_id}/entries"): _by(
        (404, 404), (200, 404), (200, 404), (200, 404), (200, 404)
    ),
    ("GET", "/courses"): _all(200),
    ("POST", "/courses"): _by(NO, NO, (201, 403), (201, 403), NO),  # the request names a kommun
    ("POST", "/courses/{course_id}/offers"): _by(NO, (200, 404), (200, 404), (200, 404), NO),
    ("POST", "/courses/{course_id}/attendance"): _by(NO, (200, 404), (200, 404), (200, 404), NO),
    ("GET", "/campaigns/{campaign_id}/members-progress/{unit_kind}/{unit}"): _all(200, 404),
    ("GET", "/campaigns/{campaign_id}/members-export"): _all(200, 403),
}

# Who sets a target, by the kind of its unit: whoever leads a unit above it (its parent in
# the tree, or for a district also its förening); a partidistrikt's, its own admins.
TARGETS_BY_KIND: dict[str, Expect] = {
    "partidistrikt": _by(NO, NO, NO, (200, 403)),
    "kommun": _by(NO, NO, NO, (200, 403)),
    "forening": ACCESS[("PUT", "/campaigns/{campaign_id}/targets")],
    "district": _by(NO, (200, 403), (200, 403), (200, 403)),
}
