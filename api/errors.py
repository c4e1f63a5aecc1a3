"""One error family for the API and one documented shape for every error answer:
``{"detail": "<field>: <problem>", "errors": [{"field": ..., "message": ...}, ...]}``."""

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

_log = logging.getLogger("knacka.errors")

__all__ = [
    "ERROR_RESPONSES",
    "AppError",
    "Conflict",
    "ErrorBody",
    "ErrorItem",
    "NotFound",
    "Unauthorized",
    "UndocumentedMethods",
    "Unprocessable",
    "concrete_paths",
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


class ErrorItem(BaseModel):
    """One field at fault; some errors add more keys (``line`` of a CSV row, ``value``, ...)."""

    model_config = ConfigDict(extra="allow")

    field: str = Field(description="The field at fault; nested fields dotted: records.0.kind")
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer of the API."""

    detail: str = Field(description="What went wrong, for a person: '<field>: <problem>'")
    errors: list[ErrorItem] = Field(
        default_factory=list, description="Each field at fault, when there are any"
    )


_ERROR_STATUSES = {
    400: "Bad request",
    401: "Not signed in, or the token is invalid, expired or revoked",
    403: "Signed in, but the unit or action is beyond the caller's reach",
    404: "Not found",
    409: "Conflicts with what exists",
    413: "Too many records in one request",
    422: "A field is invalid",
    503: "The database cannot be reached for a moment; retry (see Retry-After)",
}
_ERROR_REF = "#/components/schemas/ErrorBody"
# Declared on every operation by the app factory, so that no answer is undocumented. Errors
# are JSON whatever a route's own media type (GeoJSON, CSV), so the content is given here
# rather than by a model, which FastAPI would declare in the route's media type.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}}}
    for status, text in _ERROR_STATUSES.items()
}

# Ids are PostgreSQL integers; a path id beyond them names nothing rather than a bad value.
_ID_RANGE = range(-(2**31), 2**31)
_INTEGER = re.compile(r"^[+-]?\d+$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}


def _json_safe(value: object) -> object:
    """A value that JSON can carry: NaN and infinities (which a JSON body may contain, and
    which the encoder refuses) become text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


def _field_errors(details: object) -> list[dict[str, object]]:
    """An AppError's details in the documented shape, whatever form the service gave."""
    if isinstance(details, Mapping):
        # {"features": [...], "kommuner": [...]}: one entry per key, the values kept.
        return [
            {
                "field": str(key),
                "message": ", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v),
                "values": _json_safe(v),
            }
            for key, v in details.items()
        ]
    items = details if isinstance(details, list | tuple) else [details]
    out: list[dict[str, object]] = []
    for item in items:
        if isinstance(item, BaseModel):
            item = item.model_dump(mode="json")
        if isinstance(item, Mapping) and "field" in item and "message" in item:
            entry = {str(k): _json_safe(v) for k, v in item.items()}
            entry["field"], entry["message"] = str(item["field"]), str(item["message"])
            out.append(entry)
        else:
            out.append({"field": "", "message": str(item)})
    return out


def _message(error: Mapping[str, Any]) -> str:
    # A model validator's ValueError reads "Value error, <our text>": the prefix says nothing.
    return re.sub(r"^(Value|Assertion) error, ", "", str(error.get("msg", "invalid")))


def _validation_errors(errors: list[Mapping[str, Any]]) -> list[dict[str, object]]:
    """Pydantic's errors without their ``input`` and ``ctx``: those echo the request (a
    NaN cannot be encoded, a large body is repeated) and say nothing the message does not."""
    out: list[dict[str, object]] = []
    for error in errors:
        loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
        where = loc[1:] if len(loc) > 1 and loc[0] in ("body", "query", "path", "header") else loc
        message = _message(error)
        if error.get("type") == "json_invalid":
            # Its loc is ("body", <offset>): the field at fault is the body itself.
            where = []
            message = f"{message}: {(error.get('ctx') or {}).get('error', 'invalid JSON')}"
            message += f" at character {loc[-1]}" if isinstance(loc[-1], int) else ""
        out.append(
            {
                "field": ".".join(map(str, where)) or "body",
                "message": message,
                "type": str(error.get("type", "")),
                "loc": loc,
            }
        )
    return out


def _summary(errors: list[dict[str, object]], fallback: str) -> str:
    if not errors:
        return fallback
    first = f"{errors[0]['field']}: {errors[0]['message']}"
    return first + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


class _DocumentedPaths:
    """The methods the schema documents per path: concrete paths by name, templated ones by
    pattern. A concrete path wins over a template that also matches, as OpenAPI says."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.concrete: dict[str, frozenset[str]] = {}
        self.templated: list[tuple[re.Pattern[str], frozenset[str]]] = []
        for template, operations in spec.get("paths", {}).items():
            methods = frozenset(m.upper() for m in operations if m.upper() in _METHODS)
            if "{" in template:
                self.templated.append((compile_path(template)[0], methods))
            else:
                self.concrete[template] = methods

    def methods(self, path: str) -> frozenset[str] | None:
        """The methods documented at ``path``, or None when no documented path matches."""
        if path in self.concrete:
            return self.concrete[path]
        found = [methods for pattern, methods in self.templated if pattern.match(path)]
        return frozenset().union(*found) if found else None


def _documented_paths(app: Any) -> _DocumentedPaths:
    paths = getattr(app.state, "documented_paths", None)
    if paths is None:
        paths = app.state.documented_paths = _DocumentedPaths(app.openapi())
    return paths


def _method_not_allowed(allowed: frozenset[str]) -> JSONResponse:
    return _error_response(405, "Method Not Allowed", headers={"Allow": ", ".join(sorted(allowed))})


def concrete_paths(routes: Iterable[Any]) -> dict[str, frozenset[str]]:
    """The methods of each route path without parameters, for UndocumentedMethods."""
    found: dict[str, set[str]] = {}
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(route, APIRoute) and path and methods and "{" not in path:
            found.setdefault(path, set()).update(methods)
    return {path: frozenset(methods) for path, methods in found.items()}


class UndocumentedMethods:
    """405 for a method that a concrete path does not offer, even where a templated route
    would take the request: PATCH /contacts/batch is not PATCH /contacts/{contact_id}."""

    def __init__(self, app: Any, paths: Mapping[str, frozenset[str]]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Only a dictionary lookup per request: the hot path goes through here too.
            allowed = self.paths.get(scope["path"])
            if allowed is not None and scope["method"] not in allowed:
                await _method_not_allowed(allowed)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _out_of_range_path_id(request: Request) -> str | None:
    """The name of an integer path parameter beyond the range of ids, if there is one."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    int_params = {
        p.name for p in getattr(dependant, "path_params", ()) if p.field_info.annotation is int
    }
    for name, raw in request.path_params.items():
        text = str(raw)
        if name in int_params and _INTEGER.match(text) and int(text) not in _ID_RANGE:
            return name
    return None


class _ErrorJSON(JSONResponse):
    """JSON that renders whatever text an error repeats: a lone surrogate (which a JSON body
    may carry as an escape) cannot be UTF-8, so such a body is written with escapes."""

    def render(self, content: object) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error_response(
    status: int, detail: str, errors: list[dict[str, object]] | None = None, headers=None
) -> JSONResponse:
    body: dict[str, object] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return _ErrorJSON(status_code=status, content=body, headers=headers)


def _document_error_model(app: FastAPI) -> None:
    """Put ErrorBody (which ERROR_RESPONSES refers to) into the app's OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            error = ErrorBody.model_json_schema(
                ref_template="#/components/schemas/{model}", mode="serialization"
            )
            for name, definition in error.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas.setdefault("ErrorBody", error)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _connection_lost(exc: Exception) -> bool:
    """Whether a database error means the server or the connection went away."""
    if getattr(exc, "connection_invalidated", False):
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(
        marker in text
        for marker in (
            "connection refused",
            "shutting down",
            "terminating connection",
            "server closed the connection",
            "connection is closed",
            "could not connect",
            "the database system is starting up",
            "consuming input failed",
        )
    )


def install_handlers(app: FastAPI) -> None:
    """Render every error in the one documented shape, and document that shape."""
    _document_error_model(app)
    from sqlalchemy.exc import DataError

    # A number or text too large for its column (an id of 10**20, say) is the caller's
    # mistake, not a server error; an id in the path that large names nothing: 404.
    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        name = _out_of_range_path_id(request)
        if name is not None:
            return _error_response(404, f"{name}: {request.path_params[name]} not found")
        return _error_response(422, "a value is out of range or too long for its field")

    # A database that restarts or fails over drops every pooled connection at once: the
    # requests in flight get an honest "try again", not a 500, and the pool reconnects.
    from sqlalchemy.exc import OperationalError

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        if not _connection_lost(exc):
            raise exc
        _log.warning("database unavailable: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
        return _error_response(
            503, "database: unavailable for a moment; try again", headers={"Retry-After": "2"}
        )

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        errors = _field_errors(exc.details) if exc.details is not None else None
        return _error_response(exc.status_code, exc.message, errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc.errors())
        return _error_response(422, _summary(errors, "the request is invalid"), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        if exc.status_code == 405:
            path = request.scope.get("path", request.url.path)
            allowed = _documented_paths(request.app).methods(path)
            headers["Allow"] = ", ".join(sorted(allowed or ()))
        detail = exc.detail if isinstance(exc.detail, str) else str(_json_safe(exc.detail))
        return _error_response(exc.status_code, detail, headers=headers)
