"""What counts as a conversation: the one definition every count and target uses.

A contact log counts as conversations only when its outcome is ``conversation`` (a
conversation was held). A door, phone or workplace record then counts 1; a stall/street
record counts its ``count`` — the conversations held at the stall that the record covers.
Not home, refused, no access, moved and wrong number count 0: they are attempts, not
conversations. Withdrawn logs count nothing.
"""

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from api.models import ContactKind, Outcome

__all__ = ["conversations_of", "local_day"]


@lru_cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(moment: datetime, timezone: str) -> date:
    """The campaign's calendar day of a moment (a 23:30 UTC log in June is the next day)."""
    return moment.astimezone(_zone(timezone)).date()


def conversations_of(kind: ContactKind, outcome: Outcome, quantity: int) -> int:
    """Conversations a record adds towards a target such as Jämtland's 43,000."""
    if outcome != Outcome.conversation:
        return 0
    return quantity if kind == ContactKind.stall else 1
