"""Reading a turf's doors for the app, and the app's static files."""

import hashlib
import json
from functools import cache
from pathlib import Path

import numpy as np
import shapely
from sqlmodel import Session, select

from api.app.schemas import Door, TurfDoors
from api.auth.scope import Scope
from api.errors import NotFound
from api.map.router import LEAFLET
from api.models import Address, District, Turf, TurfAddress, Visit

__all__ = ["STATIC_DIR", "TEMPLATE_DIR", "asset_names", "asset_version", "turf_doors"]

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"


@cache
def asset_names() -> tuple[str, ...]:
    """The files under static/, the only names the static route serves."""
    return tuple(sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file()))


@cache
def asset_version() -> str:
    """A hash of the app's files and the map library it borrows: the service worker's cache
    name changes with any of them."""
    digest = hashlib.sha256()
    files = [*(STATIC_DIR / n for n in asset_names()), *sorted(TEMPLATE_DIR.iterdir())]
    for path in [*files, *LEAFLET.values()]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def turf_doors(*, session: Session, scope: Scope, code: str) -> TurfDoors:
    """A turf's addresses in walking order with each one's last visit, for whoever sees it."""
    turf = session.exec(select(Turf).where(Turf.code == code)).first()
    # A turf outside the caller's reach is answered like a missing one.
    if turf is None or turf.retired_at is not None or not scope.sees(turf):
        raise NotFound(f"code: turf {code} does not exist or is outside your unit")
    district = session.get(District, turf.district_id)
    rows = session.exec(
        select(TurfAddress.position, Address)
        .join(Address, Address.id == TurfAddress.address_id)
        .where(TurfAddress.turf_id == turf.id)
        .order_by(TurfAddress.position)
    ).all()
    last: dict[int, Visit] = {}
    # Ordered oldest first, so that the last one seen per address is its latest.
    for visit in session.exec(
        select(Visit).where(Visit.turf_id == turf.id).order_by(Visit.day, Visit.id)
    ):
        last[visit.address_id] = visit
    doors = [
        Door(
            address_id=address.id,
            position=position,
            street=address.street,
            number=address.number,
            entrance=address.entrance,
            households=address.households,
            lon=address.lon,
            lat=address.lat,
            last_status=last[address.id].status if address.id in last else None,
            last_day=last[address.id].day if address.id in last else None,
        )
        for position, address in rows
    ]
    return TurfDoors(
        code=turf.code,
        geometry=_outline(turf.geom_wkb),
        district_code=district.code,
        households=turf.households,
        address_count=turf.address_count,
        doors=doors,
    )


def _outline(wkb: bytes) -> dict:
    """The turf's polygon as GeoJSON, thinned to about a metre: the phone keeps it offline."""
    geom = shapely.simplify(shapely.from_wkb(wkb), 1e-5, preserve_topology=True)
    geom = shapely.transform(geom, lambda xy: np.round(xy, 5))
    return json.loads(shapely.to_geojson(geom))
