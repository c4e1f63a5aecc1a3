"""Dependencies shared by every domain's routes: settings, the request's clock, the caller."""

from datetime import datetime
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from api.auth.scope import Scope
from api.auth.service import authenticate
from api.db import SessionDep
from api.errors import Unauthorized
from api.models import User, utcnow
from api.settings import Settings, get_settings

__all__ = [
    "BearerDep",
    "CurrentUser",
    "NowDep",
    "ScopeDep",
    "SettingsDep",
    "bearer_token",
    "current_user",
    "request_time",
    "settings",
]


# The cheap dependencies are coroutines so that FastAPI does not hop to a worker thread
# for each of them on every request.
async def settings() -> Settings:
    """The process's settings; tests override this."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings)]


async def request_time() -> datetime:
    """The server's time for this request; tests override it to freeze the clock."""
    return utcnow()


NowDep = Annotated[datetime, Depends(request_time)]

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def bearer_token(token: Annotated[str | None, Depends(_bearer)]) -> str:
    """The bearer token as sent (not yet checked), or 401 when there is none."""
    if not token:
        raise Unauthorized("authorization: sign in and send 'Authorization: Bearer <token>'")
    return token


BearerDep = Annotated[str, Depends(bearer_token)]


def current_user(
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    token: BearerDep,
) -> User:
    """The signed-in user behind the bearer token, or 401."""
    found = authenticate(session=session, settings=settings, raw_token=token, now=now)
    if found is None:
        raise Unauthorized("authorization: the token is invalid, expired or revoked")
    return found[0]


CurrentUser = Annotated[User, Depends(current_user)]


async def _scope(session: SessionDep, user: CurrentUser) -> Scope:
    return Scope(session=session, user=user)


ScopeDep = Annotated[Scope, Depends(_scope)]
