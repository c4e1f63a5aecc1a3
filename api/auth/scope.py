"""What a signed-in user may see and change: their unit and everything below it.

District admins lead a partidistrikt, kommun leads an arbetarekommun, förening leads an
s-förening. Volunteers and förening leads may read and log in every field unit (district)
of their förening's kommun (canvassing is organised kommun-wide), but lead nothing there.
Every question about the hierarchy goes to the organisation tree (api.org.tree).
"""

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import false, or_, true
from sqlmodel import Session, col

from api.errors import AppError, Unprocessable
from api.models import District, Forening, Kommun, Partidistrikt, Role, UnitKind, User
from api.org import tree

__all__ = ["Forbidden", "Scope"]


class Forbidden(AppError):
    status_code = 403


@dataclass
class Scope:
    """The caller's reach, computed lazily from their role and unit."""

    session: Session
    user: User | None  # None: an operator at the command line, unrestricted
    _ancestors: dict = field(default_factory=dict, repr=False)

    @classmethod
    def operator(cls, session: Session) -> "Scope":
        return cls(session=session, user=None)

    @property
    def unrestricted(self) -> bool:
        return self.user is None

    @property
    def role(self) -> Role | None:
        return None if self.user is None else Role(self.user.role)

    @property
    def is_lead(self) -> bool:
        return self.unrestricted or self.role != Role.volunteer

    @cached_property
    def lead_root(self) -> tuple[UnitKind, int] | None:
        """The unit the caller leads (everything below it too); None for volunteers."""
        if self.user is None or self.role == Role.volunteer:
            return None
        return UnitKind(self.user.unit_kind), self.user.unit_id

    @cached_property
    def member_of(self) -> int | None:
        """The id of the caller's own förening, if they belong to one."""
        if self.user is not None and UnitKind(self.user.unit_kind) == tree.MEMBER_KIND:
            return self.user.unit_id
        return None

    @cached_property
    def partidistrikt_id(self) -> int | None:
        """The partidistrikt the caller's unit belongs to (everyone in it sees its campaigns)."""
        if self.user is None:
            return None
        kind = UnitKind(self.user.unit_kind)
        top = tree.LEVELS[0].kind
        if kind == top:
            return self.user.unit_id
        return tree.ancestor_ids(self.session, kind, [self.user.unit_id], top)[self.user.unit_id]

    @cached_property
    def home_id(self) -> int | None:
        """The kommun whose field units the caller reads and logs in as a member."""
        if self.member_of is None:
            return None
        found = tree.ancestor_ids(self.session, tree.MEMBER_KIND, [self.member_of], tree.HOME_KIND)
        return found[self.member_of]

    # -- one unit ---------------------------------------------------------------------------

    def _ancestor(self, kind: UnitKind, unit: object, at: UnitKind) -> int | None:
        """The id of ``unit``'s ancestor at ``at``; ``unit`` is a row or an id."""
        unit_id = unit if isinstance(unit, int) else unit.id
        key = (kind, unit_id)
        if key not in self._ancestors:
            if isinstance(unit, int):
                row = tree.get_unit(self.session, kind, unit)
                self._ancestors[key] = {} if row is None else tree.ancestors_of(self.session, row)
            else:
                self._ancestors[key] = tree.ancestors_of(self.session, unit)
        return self._ancestors[key].get(at)

    def leads(self, unit: object, kind: UnitKind | None = None) -> bool:
        """Whether the caller leads ``unit`` (a row, or an id with its ``kind``)."""
        if self.unrestricted:
            return True
        if self.lead_root is None:
            return False
        kind = kind or tree.kind_of(unit)
        root_kind, root_id = self.lead_root
        return self._ancestor(kind, unit, root_kind) == root_id

    def sees(self, unit: object, kind: UnitKind | None = None) -> bool:
        """Whether the caller may read ``unit``: what they lead, their own förening, and as
        a member the field units of their kommun."""
        if self.leads(unit, kind):
            return True
        if self.member_of is None:
            return False
        kind = kind or tree.kind_of(unit)
        if kind == tree.MEMBER_KIND:
            return (unit if isinstance(unit, int) else unit.id) == self.member_of
        home = self._ancestor(kind, unit, tree.HOME_KIND) if kind in tree.FIELD_KINDS else None
        return home is not None and home == self.home_id

    # -- whole levels -----------------------------------------------------------------------

    def led_filter(self, kind: UnitKind, column) -> object:
        """A WHERE clause keeping rows whose ``column`` (a ``kind`` id) the caller leads."""
        if self.unrestricted:
            return true()
        if self.lead_root is None:
            return false()
        root_kind, root_id = self.lead_root
        return col(column).in_(tree.ids_under(kind, root_kind, [root_id]))

    def seen_filter(self, kind: UnitKind, column) -> object:
        """A WHERE clause keeping rows whose ``column`` (a ``kind`` id) the caller sees."""
        clauses = [self.led_filter(kind, column)]
        if self.member_of is not None:
            if kind in tree.FIELD_KINDS and self.home_id is not None:
                clauses.append(
                    col(column).in_(tree.ids_under(kind, tree.HOME_KIND, [self.home_id]))
                )
            elif kind == tree.MEMBER_KIND:
                clauses.append(col(column) == self.member_of)
        return or_(*clauses)

    # -- the shapes most callers ask about ----------------------------------------------------

    @cached_property
    def partidistrikt_ids(self) -> frozenset[int]:
        """Partidistrikt the caller leads."""
        return frozenset(self._led_ids(Partidistrikt))

    @cached_property
    def led_kommun_ids(self) -> frozenset[int]:
        """Kommuner the caller leads (district admins: every kommun of their partidistrikt)."""
        return frozenset(self._led_ids(Kommun))

    @cached_property
    def home_kommun_ids(self) -> frozenset[int]:
        """Kommuner whose districts the caller may read and log contacts in."""
        home = {self.home_id} if self.home_id is not None else set()
        return self.led_kommun_ids | home

    @cached_property
    def own_forening(self) -> Forening | None:
        return None if self.member_of is None else self.session.get(Forening, self.member_of)

    def _led_ids(self, model) -> set[int]:
        if self.lead_root is None:
            return set()
        root_kind, root_id = self.lead_root
        kind = tree.kind_of(model)
        return set(self.session.exec(tree.ids_under(kind, root_kind, [root_id])))

    def sees_partidistrikt(self, partidistrikt_id: int) -> bool:
        return self.unrestricted or partidistrikt_id in self.partidistrikt_ids

    def leads_kommun(self, kommun_id: int) -> bool:
        return self.unrestricted or kommun_id in self.led_kommun_ids

    def sees_district(self, district: District) -> bool:
        return self.unrestricted or district.kommun_id in self.home_kommun_ids

    def kommun_filter(self, column):
        """A WHERE clause limiting ``column`` (a kommun id) to the kommuner whose districts
        the caller reads."""
        return true() if self.unrestricted else col(column).in_(self.home_kommun_ids)

    def forening_filter(self):
        return self.seen_filter(tree.MEMBER_KIND, Forening.id)

    # -- users --------------------------------------------------------------------------------

    def sees_user(self, other: User) -> bool:
        if self.unrestricted or (self.user is not None and other.id == self.user.id):
            return True
        return self.leads(other.unit_id, UnitKind(other.unit_kind))

    def users_filter(self):
        """A WHERE clause on User keeping the caller and the users of units they lead."""
        if self.unrestricted:
            return true()
        clauses = [User.id == self.user.id]
        if self.lead_root is not None:
            for lv in tree.LEVELS:
                clauses.append((User.unit_kind == lv.kind) & self.led_filter(lv.kind, User.unit_id))
        return or_(*clauses)

    def may_grant_role(self, role: Role) -> bool:
        """Whether the caller may invite someone with ``role`` somewhere they lead."""
        if self.unrestricted:
            return True
        if self.role == Role.volunteer:
            return False
        rank = list(Role)
        return rank.index(role) <= rank.index(self.role)

    # -- answers ----------------------------------------------------------------------------

    def require(self, allowed: bool, what: str) -> None:
        if not allowed:
            raise Forbidden(f"{what} is outside your unit")

    def require_unit(
        self, kind: UnitKind, unit_id: int, what: str, *, lead: bool = False, field: str = "unit_id"
    ):
        """The unit, if it exists and the caller sees (or leads) it; otherwise one answer
        for both cases, so that nobody learns which units exist outside their reach."""
        unit = tree.get_unit(self.session, kind, unit_id) if 0 <= unit_id < 2**63 else None
        if unit is None and self.unrestricted:
            raise Unprocessable(f"{field}: {UnitKind(kind).value} {unit_id} does not exist")
        allowed = unit is not None and (self.leads(unit) if lead else self.sees(unit))
        if not allowed:
            raise Forbidden(f"{what}: it does not exist or is outside your unit")
        return unit
