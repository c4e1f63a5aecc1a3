"""Routes for the topic list: everyone reads it, operators change it (``knacka topic``)."""

from fastapi import APIRouter

from api.db import SessionDep
from api.deps import ScopeDep
from api.topics import service
from api.topics.schemas import TopicCreate, TopicRead, TopicUpdate

__all__ = ["router"]

router = APIRouter(tags=["topics"])


@router.get("/topics", response_model=list[TopicRead])
def list_topics(session: SessionDep, scope: ScopeDep, include_inactive: bool = False):
    return service.list_topics(session=session, include_inactive=include_inactive)


@router.post("/topics", response_model=TopicRead, status_code=201)
def create_topic(session: SessionDep, scope: ScopeDep, body: TopicCreate):
    return service.create_topic(session=session, scope=scope, data=body)


@router.patch("/topics/{code}", response_model=TopicRead)
def update_topic(session: SessionDep, scope: ScopeDep, code: str, body: TopicUpdate):
    return service.update_topic(session=session, scope=scope, code=code, data=body)
