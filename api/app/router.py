"""The volunteers' app: its page (also behind a turf's QR link), manifest, service worker and
static files, all open to anyone (they hold no data), and the app's one read endpoint."""

import gzip
import hashlib
from functools import cache
from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.app import service
from api.app.schemas import TurfDoors
from api.db import SessionDep
from api.deps import ScopeDep, SettingsDep
from api.errors import NotFound
from api.map.router import LEAFLET, tile_origin
from api.settings import Settings

__all__ = ["content_security_policy", "router"]

router = APIRouter(tags=["app"])
_LEAFLET_JS, _LEAFLET_CSS = LEAFLET  # the URLs: the module, then its style sheet


def content_security_policy(settings: Settings) -> str:
    """No inline script or style and no eval: a name that slipped into the page as markup
    could run nothing. Images from itself, data: (the map library's blank tile) and the
    basemap's tile server, the same one as the leads' map."""
    origin = tile_origin(settings.basemap_url)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data:{f' {origin}' if origin else ''}; "
        "connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'; object-src 'none'"
    )


def _headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


class _JavaScript(Response):
    media_type = "text/javascript"


class _Manifest(Response):
    media_type = "application/manifest+json"


_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def _page(settings: Settings) -> HTMLResponse:
    html = (service.TEMPLATE_DIR / "index.html").read_text(encoding="utf-8")
    for key, value in {
        "__VERSION__": service.asset_version(),
        "__LEAFLET_JS__": _LEAFLET_JS,
        "__LEAFLET_CSS__": _LEAFLET_CSS,
        "__BASEMAP_URL__": settings.basemap_url,
        "__BASEMAP_ATTRIBUTION__": settings.basemap_attribution,
    }.items():
        html = html.replace(key, escape(value, quote=True))
    # Revalidated every time online; offline, the service worker answers from its cache.
    return HTMLResponse(html, headers={**_headers(settings), "Cache-Control": "no-cache"})


@router.get("/app", include_in_schema=False)
def app_root() -> RedirectResponse:
    # The service worker's scope is /app/, which /app itself is not inside.
    return RedirectResponse("/app/", status_code=308)


@router.get("/app/", response_class=HTMLResponse)
def app_page(settings: SettingsDep) -> HTMLResponse:
    """The app's one page; everything else is drawn by its scripts."""
    return _page(settings)


@router.get("/app/t/{link_code}", response_class=HTMLResponse)
def app_claim_page(settings: SettingsDep, link_code: str) -> HTMLResponse:
    """A turf's QR link: the app's page, which then claims the turf for the signed-in user."""
    return _page(settings)


@router.get(
    "/app/manifest.webmanifest",
    response_class=_Manifest,
    responses={
        200: {
            "description": "The manifest",
            "content": {"application/manifest+json": {"schema": {"type": "object"}}},
        }
    },
)
def app_manifest(settings: SettingsDep) -> Response:
    """The web app manifest, for installing the app to the home screen."""
    body = (service.TEMPLATE_DIR / "manifest.webmanifest").read_text(encoding="utf-8")
    return _Manifest(body, headers=_headers(settings))


@router.get("/app/sw.js", response_class=_JavaScript)
def app_service_worker(settings: SettingsDep) -> Response:
    """The service worker, with the versioned list of files it caches (the map library too,
    from the leads' map's URL, so that the walk list's map opens offline)."""
    body = (service.TEMPLATE_DIR / "sw.js").read_text(encoding="utf-8")
    urls = [*(f"/app/static/{name}" for name in service.asset_names()), *LEAFLET]
    assets = ", ".join(f'"{url}"' for url in urls)
    body = body.replace("__VERSION__", service.asset_version()).replace("__ASSETS__", assets)
    return _JavaScript(
        body,
        headers={
            **_headers(settings),
            "Cache-Control": "no-cache",
            "Service-Worker-Allowed": "/app/",
        },
    )


@cache
def _static_file(name: str) -> tuple[bytes, bytes, str]:
    """A file's bytes, gzipped bytes and ETag, read once (as asset_version assumes)."""
    body = (service.STATIC_DIR / name).read_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
    return body, gzip.compress(body, compresslevel=9, mtime=0), etag


@router.get(
    "/app/static/{name}",
    response_class=Response,
    responses={
        200: {
            "description": "The file",
            "content": {t.split(";")[0]: {} for t in ("text/javascript", "text/css", "image/png")},
        },
        304: {"description": "Not modified: the ETag sent in If-None-Match"},
    },
)
def app_static(request: Request, settings: SettingsDep, name: str) -> Response:
    """One of the app's static files (scripts, style, icons), gzipped when the browser
    takes it: the first load on a slow connection is mostly these bytes."""
    if name not in service.asset_names():
        raise NotFound(f"name: no app file {name}")
    body, packed, etag = _static_file(name)
    headers = {
        **_headers(settings),
        "ETag": etag,
        "Cache-Control": "no-cache",
        "Vary": "Accept-Encoding",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    media_type = _TYPES.get(Path(name).suffix, "application/octet-stream")
    if "gzip" in request.headers.get("accept-encoding", "") and len(packed) < len(body):
        return Response(
            packed, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"}
        )
    return Response(body, media_type=media_type, headers=headers)


@router.get("/app/api/turfs/{code}/doors", response_model=TurfDoors)
def turf_doors(session: SessionDep, scope: ScopeDep, code: str) -> TurfDoors:
    """A turf's addresses in walking order, each with its last visit's status and day."""
    return service.turf_doors(session=session, scope=scope, code=code)
