"""The leads' map: the page at /karta with its own static files, and the GeoJSON and chart
it draws. The page needs no token (it signs in itself); everything it loads but its own
code does."""

import gzip
import mimetypes
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from api.contacts.rules import local_day
from api.db import SessionDep
from api.deps import NowDep, ScopeDep, SettingsDep
from api.errors import NotFound
from api.map import service
from api.models import UnitKind
from api.settings import Settings

__all__ = ["LEAFLET", "STATIC", "content_security_policy", "router", "tile_origin"]

router = APIRouter(tags=["map"])

STATIC = Path(__file__).resolve().parent / "static"
# The vendored map library's files by the URL this router serves them at. The volunteers'
# app loads these same URLs (one copy on disk, one entry in the browser's cache).
LEAFLET = {
    f"/karta/static/vendor/leaflet/{name}": STATIC / "vendor" / "leaflet" / name
    for name in ("leaflet-src.esm.js", "leaflet.css")
}
_GEOJSON = "application/geo+json"
_ZOOM = Query(12, ge=service.MIN_ZOOM, le=service.MAX_ZOOM, description="The map's zoom level.")
_NOT_MODIFIED = {304: {"description": "Not modified: the ETag sent in If-None-Match"}}
_GEOJSON_RESPONSES = {
    200: {
        "description": "A GeoJSON FeatureCollection in WGS84 (see the FeatureCollection schema)",
        "content": {_GEOJSON: {"schema": {"type": "object"}}},
    },
    **_NOT_MODIFIED,
}
_ENV = Environment(
    loader=PackageLoader("api.map", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def tile_origin(url: str) -> str | None:
    """The origin tiles come from, for img-src: a {s} subdomain becomes a wildcard."""
    if not url:
        return None
    parts = urlsplit(url.replace("{s}", "*"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """The map page's policy: its own scripts and styles only, no inline code, no eval;
    images from itself, blob: (the charts and QR codes it fetches with the token), data:
    (the map library's blank tile) and the basemap's tile server."""
    origin = tile_origin(settings.basemap_url)
    img = "img-src 'self' blob: data:" + (f" {origin}" if origin else "")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            img,
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


_PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class _GzipCache:
    """Compressed bodies by their ETag: a kommun's map asked for again and again is
    compressed once."""

    def __init__(self, size: int) -> None:
        self.size, self.entries, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, etag: str, body: bytes) -> bytes:
        with self.lock:
            found = self.entries.get(etag)
            if found is not None:
                self.entries.move_to_end(etag)
                return found
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        with self.lock:
            self.entries[etag] = packed
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return packed


_gzipped = _GzipCache(64)


def _send(
    request: Request,
    body: bytes,
    media_type: str,
    *,
    cache: str = "private, no-cache",
    headers: dict[str, str] | None = None,
) -> Response:
    """``body`` with an ETag (304 when the client has it), gzipped when accepted."""
    etag = service.etag_of(body)
    common = {
        "ETag": etag,
        "Cache-Control": cache,
        "Vary": "Accept-Encoding, Authorization",
        "X-Content-Type-Options": "nosniff",
        **(headers or {}),
    }
    wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if etag in wanted or f"W/{etag}" in wanted:
        return Response(status_code=304, headers=common)
    if "gzip" in request.headers.get("accept-encoding", "") and len(body) > 512:
        packed = _gzipped.get(etag, body)
        return Response(
            packed, media_type=media_type, headers={**common, "Content-Encoding": "gzip"}
        )
    return Response(body, media_type=media_type, headers=common)


# -- the page -----------------------------------------------------------------------------


@router.get(
    "/karta",
    response_class=Response,
    responses={
        200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
        **_NOT_MODIFIED,
    },
)
def map_page(request: Request, settings: SettingsDep) -> Response:
    """The leads' map (Swedish). It signs in by itself; the data it draws needs a token."""
    html = _ENV.get_template("karta.html").render(
        basemap_url=settings.basemap_url,
        basemap_attribution=settings.basemap_attribution,
    )
    headers = {**_PAGE_HEADERS, "Content-Security-Policy": content_security_policy(settings)}
    return _send(
        request, html.encode(), "text/html; charset=utf-8", cache="no-cache", headers=headers
    )


@lru_cache(maxsize=64)
def _static_file(relative: str) -> bytes | None:
    path = (STATIC / relative).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        return None
    return path.read_bytes()


@router.get(
    "/karta/static/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "A script, style sheet, image or licence of the page",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **_NOT_MODIFIED,
    },
)
def map_static(request: Request, path: Annotated[str, PathParam(max_length=200)]) -> Response:
    """The page's own scripts and styles, and the vendored map library."""
    body = _static_file(path)
    if body is None:
        raise NotFound(f"path: no file {path}")
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media in ("text/javascript", "application/javascript") or path.endswith(".js"):
        media = "text/javascript; charset=utf-8"
    elif media == "text/css":
        media = "text/css; charset=utf-8"
    # Revalidated every time (cheap: a 304), so that an upgrade is never half-applied.
    return _send(request, body, media, cache="no-cache")


# -- the data -----------------------------------------------------------------------------


@router.get(
    "/map/districts.geojson",
    response_class=Response,
    responses=_GEOJSON_RESPONSES,
)
def map_districts(
    request: Request,
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign: Annotated[int | None, Query(description="Progress in this campaign.")] = None,
    kommun: Annotated[
        str | None, Query(max_length=4, description="Only this kommun (SCB code, e.g. 2380).")
    ] = None,
    zoom: int = _ZOOM,
    turfs: Annotated[bool, Query(description="Also the districts' live turfs.")] = False,
) -> Response:
    """The districts the caller sees, simplified for ``zoom``, with their förening, whether
    one covers them, progress per metric against today's pace, door coverage from the turf
    snapshots and priority from the latest election result; optionally their turfs with
    coverage and lease."""
    body = service.district_collection(
        session=session,
        scope=scope,
        zoom=zoom,
        today=local_day(now, settings.timezone),
        now=now,
        campaign_id=campaign,
        kommun=kommun,
        with_turfs=turfs,
    )
    return _send(request, body, _GEOJSON)


@router.get(
    "/map/turfs/{code}/addresses.geojson",
    response_class=Response,
    responses=_GEOJSON_RESPONSES,
)
def map_turf_addresses(
    request: Request,
    session: SessionDep,
    scope: ScopeDep,
    code: Annotated[str, PathParam(max_length=60)],
) -> Response:
    """The addresses of one turf, in walking order."""
    return _send(
        request, service.address_collection(session=session, scope=scope, code=code), _GEOJSON
    )


@router.get(
    "/map/outlines.geojson",
    response_class=Response,
    responses=_GEOJSON_RESPONSES,
)
def map_outlines(
    request: Request, session: SessionDep, scope: ScopeDep, zoom: int = _ZOOM
) -> Response:
    """The outlines of the caller's kommuner and län, the union of their districts: the
    background when no basemap can be reached."""
    return _send(
        request, service.outline_collection(session=session, scope=scope, zoom=zoom), _GEOJSON
    )


@router.get(
    "/map/chart.png",
    response_class=Response,
    responses={
        200: {
            "description": "The chart",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **_NOT_MODIFIED,
    },
)
def map_chart(
    request: Request,
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign: int,
    unit_kind: UnitKind,
    unit: Annotated[str, Query(max_length=40, description="As in the progress routes.")],
) -> Response:
    """The nightly email's chart of one unit: conversations per day against the pace."""
    png = service.progress_chart_png(
        session=session,
        scope=scope,
        campaign_id=campaign,
        unit_kind=unit_kind,
        unit=unit,
        today=local_day(now, settings.timezone),
    )
    return _send(request, png, "image/png")
