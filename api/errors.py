"""One error family for the API, rendered by one handler."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = [
    "AppError",
    "BadRequest",
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


class BadRequest(AppError):
    status_code = 400


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
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        body: dict[str, object] = {"detail": exc.message}
        if exc.details is not None:
            body["errors"] = exc.details
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)
