"""One error family for the API, rendered by one handler."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = [
    "AppError",
    "Conflict",
    "NotFound",
    "Unauthorized",
    "Unprocessable",
    "install_handlers",
]


class AppError(Exception):
    """An error whose message is safe to show to the caller."""

    status_code = 400

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        *,
        details: object = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.details = details
        self.headers = headers


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class Unprocessable(AppError):
    status_code = 422


class Unauthorized(AppError):
    status_code = 401

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


def install_handlers(app: FastAPI) -> None:
    from sqlalchemy.exc import DataError

    # A number or text too large for its column (an id of 10**20, say) is the caller's
    # mistake, not a server error.
    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": "a value is out of range or too long for its field"},
        )

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        body: dict[str, object] = {"detail": exc.message}
        if exc.details is not None:
            body["errors"] = exc.details
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)
