"""What a signed-in user may see and change: their unit and everything below it.

District admins lead a partidistrikt, kommun leads an arbetarekommun, förening leads an
s-förening. Volunteers and förening leads may read and log in every district of their
förening's kommun (canvassing is organised kommun-wide), but lead nothing there.
"""

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import true
from sqlmodel import Session, col, select

from api.errors import AppError
from api.models import District, Forening, Kommun, Role, UnitKind, User

__all__ = ["Forbidden", "Scope"]


class Forbidden(AppError):
    status_code = 403


@dataclass
class Scope:
    """The caller's reach, computed lazily from their role and unit."""

    session: Session
    user: User | None  # None: an operator at the command line, unrestricted

    @classmethod
    def operator(cls, session: Session) -> "Scope":
        return cls(session=session, user=None)

    @property
    def unrestricted(self) -> bool:
        return self.user is None

    @property
    def role(self) -> Role | None:
        return None if self.user is None else Role(self.user.role)

    @cached_property
    def partidistrikt_ids(self) -> frozenset[int]:
        if self.role == Role.district_admin:
            return frozenset({self.user.unit_id})
        return frozenset()

    @cached_property
    def led_kommun_ids(self) -> frozenset[int]:
        """Kommuner the caller leads (district admins: every kommun of their partidistrikt)."""
        if self.role == Role.district_admin:
            q = select(Kommun.id).where(Kommun.partidistrikt_id == self.user.unit_id)
            return frozenset(self.session.exec(q).all())
        if self.role == Role.kommun_lead:
            return frozenset({self.user.unit_id})
        return frozenset()

    @cached_property
    def own_forening(self) -> Forening | None:
        if self.user is not None and self.user.unit_kind == UnitKind.forening:
            return self.session.get(Forening, self.user.unit_id)
        return None

    @cached_property
    def home_kommun_ids(self) -> frozenset[int]:
        """Kommuner whose districts the caller may read and log contacts in."""
        if self.own_forening is not None:
            return self.led_kommun_ids | {self.own_forening.kommun_id}
        return self.led_kommun_ids

    @property
    def is_lead(self) -> bool:
        return self.unrestricted or self.role != Role.volunteer

    # -- predicates -------------------------------------------------------------------------

    def sees_partidistrikt(self, partidistrikt_id: int) -> bool:
        return self.unrestricted or partidistrikt_id in self.partidistrikt_ids

    def leads_kommun(self, kommun_id: int) -> bool:
        return self.unrestricted or kommun_id in self.led_kommun_ids

    def leads_forening(self, forening: Forening) -> bool:
        if self.leads_kommun(forening.kommun_id):
            return True
        return self.role == Role.forening_lead and self.user.unit_id == forening.id

    def sees_forening(self, forening: Forening) -> bool:
        if self.leads_kommun(forening.kommun_id):
            return True
        return self.own_forening is not None and self.own_forening.id == forening.id

    def sees_district(self, district: District) -> bool:
        return self.unrestricted or district.kommun_id in self.home_kommun_ids

    def sees_user(self, other: User) -> bool:
        if self.unrestricted or (self.user is not None and other.id == self.user.id):
            return True
        if self.role == Role.volunteer:
            return False
        return self._unit_within(UnitKind(other.unit_kind), other.unit_id)

    def _unit_within(self, kind: UnitKind, unit_id: int) -> bool:
        """Whether a unit lies within what the caller leads."""
        if self.unrestricted:
            return True
        if kind == UnitKind.partidistrikt:
            return unit_id in self.partidistrikt_ids
        if kind == UnitKind.kommun:
            return unit_id in self.led_kommun_ids
        forening = self.session.get(Forening, unit_id)
        return forening is not None and self.leads_forening(forening)

    def may_grant(self, role: Role, kind: UnitKind, unit_id: int) -> bool:
        """Whether the caller may invite someone with ``role`` in that unit."""
        if self.unrestricted:
            return True
        if self.role == Role.volunteer:
            return False
        rank = list(Role)
        return rank.index(role) <= rank.index(self.role) and self._unit_within(kind, unit_id)

    # -- filters ----------------------------------------------------------------------------

    def require(self, allowed: bool, what: str) -> None:
        if not allowed:
            raise Forbidden(f"{what} is outside your unit")

    def kommun_filter(self, column):
        """A WHERE clause limiting ``column`` (a kommun id) to the kommuner the caller sees."""
        return true() if self.unrestricted else col(column).in_(self.home_kommun_ids)

    def forening_filter(self):
        if self.unrestricted:
            return true()
        own = {self.own_forening.id} if self.own_forening else set()
        return col(Forening.kommun_id).in_(self.led_kommun_ids) | col(Forening.id).in_(own)
