"""The FastAPI application factory."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.orm import configure_mappers

from api.addresses.router import router as addresses_router
from api.app.router import router as app_router
from api.auth.router import router as auth_router
from api.campaigns.router import router as campaigns_router
from api.contacts.router import router as contacts_router
from api.districts.router import router as districts_router
from api.errors import ERROR_RESPONSES, UndocumentedMethods, concrete_paths, install_handlers
from api.fastdb import close_fast_db
from api.map.router import router as map_router
from api.members.router import router as members_router
from api.org.router import router as org_router
from api.progress.router import router as progress_router
from api.results.router import router as results_router
from api.topics.router import router as topics_router
from api.turfs.cutting_router import router as turf_cutting_router
from api.turfs.router import router as turfs_router

__all__ = ["create_app"]


_gc_frozen = False
# Container allocations (net) between two collections of the youngest generation.
_GC_YOUNGEST = 20_000


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    global _gc_frozen
    # What exists once the app has started (modules, the app itself) is never garbage; left
    # in the collector's oldest generation, each full collection scans it all and stalls
    # every request in flight (it tripled the single-record benchmark's p99). Frozen, the
    # collector skips it. Once per process: a process that builds many apps pays it once.
    if not _gc_frozen:
        _gc_frozen = True
        # The ORM builds its mappers' machinery at the first query: build it now, so that
        # it is frozen too (left to the first request, it made every full collection
        # several milliseconds).
        configure_mappers()
        gc.collect()
        gc.freeze()
        # What the first requests build (compiled statements, connections' adapters) stays
        # unfrozen, and a full collection of it still stalls a request by several
        # milliseconds. CPython's default starts one every few dozen requests; a larger
        # youngest generation (each of its collections well under a millisecond) makes
        # them some twenty times rarer.
        gc.set_threshold(_GC_YOUNGEST, *gc.get_threshold()[1:])
    try:
        yield
    finally:
        await close_fast_db(app)


def create_app() -> FastAPI:
    """Build the app with every domain's routes and the one error handler."""
    # The docs pages' scripts are served from the package, never from a CDN.
    app = FastAPIOffline(
        title="Knacka",
        summary="Canvassing and campaign field work: districts, conversations, progress.",
        version="0.1.0",
        lifespan=_lifespan,
        # Every operation documents the error answers, in the one shape they all have.
        responses=ERROR_RESPONSES,
    )
    install_handlers(app)
    # Routes are matched in order, at a cost per route tried: phones' logging comes first.
    routers = [
        contacts_router,
        auth_router,
        org_router,
        districts_router,
        campaigns_router,
        progress_router,
        topics_router,
        addresses_router,
        results_router,
        app_router,
        turfs_router,
        map_router,
        turf_cutting_router,
        members_router,
    ]
    for router in routers:
        app.include_router(router)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    routes = [route for router in routers for route in router.routes] + app.router.routes
    app.add_middleware(UndocumentedMethods, paths=concrete_paths(routes))
    return app
