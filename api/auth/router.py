"""Routes for sign-in, the caller's devices, and inviting and managing users."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm

from api.auth import service
from api.auth.schemas import (
    CodeRequest,
    DeviceRead,
    Invite,
    Preferences,
    TokenResponse,
    UserRead,
)
from api.db import SessionDep
from api.deps import CurrentUser, NowDep, ScopeDep, SettingsDep

router = APIRouter(tags=["accounts"])


@router.post("/auth/code", status_code=status.HTTP_202_ACCEPTED)
def request_code(
    request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, body: CodeRequest
):
    """Email a one-time sign-in code, valid for some minutes; codes sent earlier stay valid.
    The answer is the same whether or not the address has an account, so that nobody can
    probe who is a member, and whether or not an hourly limit held the code back."""
    # Behind a reverse proxy on another host this is the proxy's address unless uvicorn
    # trusts its X-Forwarded-For (FORWARDED_ALLOW_IPS).
    client = request.client.host if request.client else ""
    service.request_code(
        session=session, settings=settings, email=body.email, client=client, now=now
    )
    return {"detail": "if the address has an account, a sign-in code is on its way"}


@router.post("/auth/token", response_model=TokenResponse)
def exchange_code(
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
):
    """OAuth2 password form: ``username`` is the email, ``password`` the one-time code and
    ``client_id`` (optional) names the device. Returns a long-lived device token."""
    result = service.exchange_code(
        session=session,
        settings=settings,
        email=form.username,
        code=form.password,
        device_name=form.client_id or "",
        now=now,
    )
    if isinstance(result, service.Refused):
        # Returned, not raised: the failed attempt must be committed to count.
        return JSONResponse(status_code=400, content={"detail": result.message})
    raw, device = result
    return TokenResponse(access_token=raw, device_id=device.id)


@router.get("/me", response_model=UserRead)
def me(user: CurrentUser):
    return user


@router.put("/me/preferences", response_model=UserRead)
def set_preferences(session: SessionDep, user: CurrentUser, body: Preferences):
    """Opt in to or out of the nightly progress email."""
    return service.set_preferences(session=session, user=user, nightly_email=body.nightly_email)


@router.get("/me/devices", response_model=list[DeviceRead])
def my_devices(session: SessionDep, user: CurrentUser):
    return service.list_devices(session=session, user_id=user.id)


@router.delete("/me/devices/{device_id}", response_model=DeviceRead)
def revoke_my_device(session: SessionDep, user: CurrentUser, now: NowDep, device_id: int):
    return service.revoke_device(session=session, user=user, device_id=device_id, now=now)


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
def invite_user(session: SessionDep, scope: ScopeDep, body: Invite):
    """Invite a volunteer or lead into a unit within the caller's reach. They sign in with
    a code sent to their email; there are no passwords."""
    return service.invite_user(session=session, scope=scope, data=body)


@router.get("/users", response_model=list[UserRead])
def list_users(session: SessionDep, scope: ScopeDep):
    return service.list_users(session=session, scope=scope)


@router.get("/users/{user_id}", response_model=UserRead)
def get_user(session: SessionDep, scope: ScopeDep, user_id: int):
    return service.get_user(session=session, scope=scope, user_id=user_id)


@router.get("/users/{user_id}/devices", response_model=list[DeviceRead])
def user_devices(session: SessionDep, scope: ScopeDep, user_id: int):
    return service.devices_of(session=session, scope=scope, user_id=user_id)


@router.post("/users/{user_id}/devices/revoke")
def revoke_user_devices(session: SessionDep, scope: ScopeDep, now: NowDep, user_id: int):
    """Sign a user out of every device (a lead's action, e.g. for a lost phone)."""
    revoked = service.revoke_devices_of(session=session, scope=scope, user_id=user_id, now=now)
    return {"revoked": revoked}
