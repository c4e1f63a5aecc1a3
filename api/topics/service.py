"""The topic list phones offer. It is shared by every partidistrikt, so only operators (the
``knacka topic`` command) change it; logs keep the topics they had."""

from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.db import save_unique
from api.errors import AppError, Conflict, NotFound
from api.models import Topic
from api.topics.schemas import TopicCreate, TopicUpdate

__all__ = ["active_codes", "create_topic", "list_topics", "update_topic"]


def active_codes(*, session: Session) -> set[str]:
    """The codes a new or corrected log may carry."""
    return set(session.exec(select(Topic.code).where(col(Topic.active))))


def list_topics(*, session: Session, include_inactive: bool = False) -> list[Topic]:
    """The topic list, in code order."""
    query = select(Topic).order_by(Topic.code)
    if not include_inactive:
        query = query.where(col(Topic.active))
    return list(session.exec(query))


def _require_operator(scope: Scope) -> None:
    if not scope.unrestricted:
        raise AppError(
            "topics: the topic list is shared by every partidistrikt; an operator changes it "
            "with `knacka topic`",
            403,
        )


def create_topic(*, session: Session, scope: Scope, data: TopicCreate) -> Topic:
    """Add a topic. The list is shared by every partidistrikt, so only operators change it."""
    _require_operator(scope)
    if session.get(Topic, data.code) is not None:
        raise Conflict(f"code: topic {data.code} exists")
    topic = Topic(code=data.code, label=data.label, active=True)
    save_unique(session, topic, f"code: topic {data.code} exists")
    return topic


def update_topic(*, session: Session, scope: Scope, code: str, data: TopicUpdate) -> Topic:
    """Relabel or retire a topic (operators); logs keep the topics they had."""
    _require_operator(scope)
    topic = session.get(Topic, code)
    if topic is None:
        raise NotFound(f"topic {code} not found")
    if data.label is not None:
        topic.label = data.label
    if data.active is not None:
        topic.active = data.active
    session.add(topic)
    return topic
