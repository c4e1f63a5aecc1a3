"""Routes for partidistrikt, kommuner and s-föreningar."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from api.db import SessionDep
from api.deps import ScopeDep
from api.models import Forening, ForeningKind
from api.org import service
from api.org.schemas import (
    ForeningCreate,
    ForeningRead,
    ForeningUpdate,
    KommunCreate,
    KommunRead,
    KommunUpdate,
    PartidistriktCreate,
    PartidistriktRead,
    PartidistriktUpdate,
)
from api.pagination import Page, PageDep

router = APIRouter(tags=["organisation"])


@router.get("/partidistrikt", response_model=Page[PartidistriktRead])
def list_partidistrikt(session: SessionDep, scope: ScopeDep, page: PageDep, q: str | None = None):
    items, total = service.list_partidistrikt(session=session, scope=scope, page=page, q=q)
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post(
    "/partidistrikt", response_model=PartidistriktRead, status_code=status.HTTP_201_CREATED
)
def create_partidistrikt(session: SessionDep, scope: ScopeDep, body: PartidistriktCreate):
    return service.create_partidistrikt(session=session, scope=scope, data=body)


@router.get("/partidistrikt/{partidistrikt_id}", response_model=PartidistriktRead)
def get_partidistrikt(session: SessionDep, scope: ScopeDep, partidistrikt_id: int):
    return service.get_partidistrikt(
        session=session, scope=scope, partidistrikt_id=partidistrikt_id
    )


@router.patch("/partidistrikt/{partidistrikt_id}", response_model=PartidistriktRead)
def update_partidistrikt(
    session: SessionDep, scope: ScopeDep, partidistrikt_id: int, body: PartidistriktUpdate
):
    return service.update_partidistrikt(
        session=session, scope=scope, partidistrikt_id=partidistrikt_id, data=body
    )


@router.get("/kommuner", response_model=Page[KommunRead])
def list_kommuner(
    session: SessionDep,
    scope: ScopeDep,
    page: PageDep,
    partidistrikt_id: int | None = None,
    q: str | None = None,
):
    items, total = service.list_kommuner(
        session=session, scope=scope, page=page, partidistrikt_id=partidistrikt_id, q=q
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("/kommuner", response_model=KommunRead, status_code=status.HTTP_201_CREATED)
def create_kommun(session: SessionDep, scope: ScopeDep, body: KommunCreate):
    return service.create_kommun(session=session, scope=scope, data=body)


@router.get("/kommuner/{code}", response_model=KommunRead)
def get_kommun(session: SessionDep, scope: ScopeDep, code: str):
    return service.get_kommun(session=session, scope=scope, code=code)


@router.patch("/kommuner/{code}", response_model=KommunRead)
def update_kommun(session: SessionDep, scope: ScopeDep, code: str, body: KommunUpdate):
    return service.update_kommun(session=session, scope=scope, code=code, data=body)


def _forening_reads(session: Session, items: list[Forening]) -> list[ForeningRead]:
    counts = service.district_counts(session=session, forening_ids=[f.id for f in items])
    return [
        ForeningRead(**f.model_dump(warnings=False), district_count=counts.get(f.id, 0))
        for f in items
    ]


@router.get("/foreningar", response_model=Page[ForeningRead])
def list_foreningar(
    session: SessionDep,
    scope: ScopeDep,
    page: PageDep,
    kommun_id: int | None = None,
    kind: ForeningKind | None = None,
    q: Annotated[str | None, Query(description="Part of the name")] = None,
):
    items, total = service.list_foreningar(
        session=session, scope=scope, page=page, kommun_id=kommun_id, kind=kind, q=q
    )
    return Page(
        items=_forening_reads(session, items), total=total, limit=page.limit, offset=page.offset
    )


@router.post("/foreningar", response_model=ForeningRead, status_code=status.HTTP_201_CREATED)
def create_forening(session: SessionDep, scope: ScopeDep, body: ForeningCreate):
    return _forening_reads(
        session, [service.create_forening(session=session, scope=scope, data=body)]
    )[0]


@router.get("/foreningar/{forening_id}", response_model=ForeningRead)
def get_forening(session: SessionDep, scope: ScopeDep, forening_id: int):
    return _forening_reads(
        session, [service.get_forening(session=session, scope=scope, forening_id=forening_id)]
    )[0]


@router.patch("/foreningar/{forening_id}", response_model=ForeningRead)
def update_forening(session: SessionDep, scope: ScopeDep, forening_id: int, body: ForeningUpdate):
    obj = service.update_forening(session=session, scope=scope, forening_id=forening_id, data=body)
    return _forening_reads(session, [obj])[0]
