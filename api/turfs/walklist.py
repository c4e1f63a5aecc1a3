"""Walk lists for printing: a turf's addresses in walking order, as CSV and as an A4 HTML
page with the turf's map drawn server-side as inline SVG (no script; the one file it loads is
its style sheet), and the turf's QR code.

No PDF: every browser prints this page to paper or to PDF, and a PDF library that lays out
HTML (WeasyPrint) needs system libraries (Pango) that a pure-Python install does not have.
"""

import io
import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from html import escape

import segno
import shapely
from sqlmodel import Session, select

from api.models import Address, District, Turf, TurfAddress
from api.spreadsheet import to_csv
from api.turfs.coverage import answered_addresses

__all__ = [
    "CSP",
    "OUTCOMES",
    "PAGE_ROWS",
    "STYLESHEET",
    "WalkRow",
    "claim_url",
    "qr_svg",
    "walk_csv",
    "walk_html",
    "walk_rows",
]

# The page holds no script and loads one file, its style sheet (STYLESHEET, below the base URL).
CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'"
# Served with the map page's files. Linked by absolute URL: a copy the map opens from a blob:
# URL has no base to resolve a relative one against (and the map's policy forbids <base>).
STYLESHEET = "/karta/static/walklist.css"
PAGE_ROWS = 25
# The boxes a volunteer ticks at each door, in Swedish as printed.
OUTCOMES = ("Svarade", "Ej hemma", "Ej tillträde", "Samtal", "Ny medlem")


@dataclass
class WalkRow:
    position: int
    address_id: int
    street: str
    number: str
    entrance: str | None
    postcode: str | None
    postort: str | None
    households: int
    lon: float
    lat: float
    answered: bool

    @property
    def label(self) -> str:
        entrance = f" {self.entrance}" if self.entrance else ""
        return f"{self.street} {self.number}{entrance}".strip()


def walk_rows(*, session: Session, turf: Turf) -> list[WalkRow]:
    """The turf's addresses in walking order, each marked when a visit was answered."""
    answered = answered_addresses(session=session, turf_id=turf.id)
    rows = session.exec(
        select(TurfAddress.position, Address)
        .join(Address, Address.id == TurfAddress.address_id)
        .where(TurfAddress.turf_id == turf.id)
        .order_by(TurfAddress.position)
    )
    return [
        WalkRow(
            position=position,
            address_id=a.id,
            street=a.street,
            number=a.number,
            entrance=a.entrance,
            postcode=a.postcode,
            postort=a.postort,
            households=a.households,
            lon=a.lon,
            lat=a.lat,
            answered=a.id in answered,
        )
        for position, a in rows
    ]


def claim_url(base: str, turf: Turf) -> str:
    """The absolute short link a turf's QR code carries."""
    return f"{base.rstrip('/')}/app/t/{turf.link_code}"


# Encoding takes ~15 ms in pure Python; a turf's link never changes, and lists are printed
# again and again.
@lru_cache(maxsize=2048)
def qr_svg(url: str, *, scale: int = 4, inline: bool = False) -> str:
    """The QR code of ``url`` as SVG (a document, or an element for inline use)."""
    code = segno.make(url, error="m")
    if inline:
        return code.svg_inline(scale=scale, omitsize=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=scale, xmldecl=True, title=url)
    return out.getvalue().decode()


def walk_csv(rows: list[WalkRow]) -> str:
    """The walk list as CSV: one line per address in walking order (formula-safe)."""
    header = ["ordning", "address_id", "gata", "nummer", "uppgång", "postnummer", "postort"]
    lines: list[list[object]] = [[*header, "hushåll", "svarat"]]
    for r in rows:
        lines.append(
            [
                r.position,
                r.address_id,
                r.street,
                r.number,
                r.entrance,
                r.postcode,
                r.postort,
                r.households,
                "ja" if r.answered else "",
            ]
        )
    return to_csv(lines)


# -- the printable page ---------------------------------------------------------------------

_MAP_W, _MAP_H, _PAD = 240.0, 170.0, 8.0


def _map_svg(turf: Turf, rows: list[WalkRow], highlight: set[int]) -> str:
    """The turf's polygon and its address points, scaled to a small map (lon shrunk by
    cos(lat) so that the shape is not stretched)."""
    geom = shapely.from_wkb(turf.geom_wkb)
    minx, miny, maxx, maxy = geom.bounds
    for r in rows:
        minx, maxx = min(minx, r.lon), max(maxx, r.lon)
        miny, maxy = min(miny, r.lat), max(maxy, r.lat)
    k = math.cos(math.radians((miny + maxy) / 2))
    width = max((maxx - minx) * k, 1e-9)
    height = max(maxy - miny, 1e-9)
    scale = min((_MAP_W - 2 * _PAD) / width, (_MAP_H - 2 * _PAD) / height)

    def xy(lon: float, lat: float) -> str:
        x = _PAD + (lon - minx) * k * scale
        y = _MAP_H - _PAD - (lat - miny) * scale
        return f"{x:.1f},{y:.1f}"

    rings = []
    polygons = getattr(geom, "geoms", [geom])
    for poly in polygons:
        for ring in [poly.exterior, *poly.interiors]:
            rings.append("M" + " L".join(xy(x, y) for x, y in ring.coords) + " Z")
    parts = [
        f'<svg class="map" viewBox="0 0 {_MAP_W:.0f} {_MAP_H:.0f}" role="img" '
        f'aria-label="Karta över {escape(turf.code)}" xmlns="http://www.w3.org/2000/svg">',
        f'<path d="{" ".join(rings)}" fill="#f4f4f4" stroke="#333" stroke-width="1.2" '
        'fill-rule="evenodd"/>',
    ]
    if len(rows) > 1:
        line = " L".join(xy(r.lon, r.lat) for r in rows)
        parts.append(f'<path d="M{line}" fill="none" stroke="#999" stroke-width="0.6"/>')
    for r in rows:
        x, y = xy(r.lon, r.lat).split(",")
        on_page = r.position in highlight
        fill = "#000" if on_page else "#bbb"
        parts.append(f'<circle cx="{x}" cy="{y}" r="{2.6 if on_page else 1.8}" fill="{fill}"/>')
    parts.append("</svg>")
    return "".join(parts)


def walk_html(
    *,
    turf: Turf,
    district: District,
    rows: list[WalkRow],
    url: str,
    stylesheet: str,
    today: date,
) -> str:
    """The printable walk list: a page per PAGE_ROWS addresses, each with the turf's code,
    its map (this page's doors in black) and a box per outcome; every name escaped.
    ``stylesheet`` is the absolute URL of STYLESHEET."""
    chunks = [rows[i : i + PAGE_ROWS] for i in range(0, len(rows), PAGE_ROWS)] or [[]]
    qr = qr_svg(url, scale=2, inline=True).replace("<svg ", '<svg class="qr" ', 1)
    code, name = escape(turf.code), escape(district.name)
    households = sum(r.households for r in rows)
    head = "".join(f'<th class="box">{escape(o)}</th>' for o in OUTCOMES)
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        body = []
        for r in chunk:
            mark = ' <span class="note">(svarat tidigare)</span>' if r.answered else ""
            boxes = '<td class="box"><span></span></td>' * len(OUTCOMES)
            body.append(
                f'<tr{" class=answered" if r.answered else ""}><td class="n">{r.position}</td>'
                f"<td>{escape(r.label)}{mark}</td>"
                f'<td class="n">{r.households}</td>{boxes}</tr>'
            )
        pages.append(
            '<section class="page"><header><div>'
            f"<h1>Område {code}</h1>"
            f'<p class="meta">{name} · {len(rows)} adresser · {households} hushåll · '
            f"sida {number} av {len(chunks)} · utskriven {today.isoformat()}</p>"
            f'<p class="meta">Ta området: {escape(url)}</p></div>'
            f"{_map_svg(turf, rows, {r.position for r in chunk})}{qr}</header>"
            f'<table><thead><tr><th class="n">Nr</th><th>Adress</th><th class="n">Hushåll</th>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            '<footer class="note">Kryssa en ruta per dörr. Skriv inga namn eller åsikter på '
            "listan: den visar bara var vi har knackat.</footer></section>"
        )
    return (
        '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
        f"<title>Knacklista {code}</title>"
        f'<link rel="stylesheet" href="{escape(stylesheet)}"></head>'
        f"<body>{''.join(pages)}</body></html>"
    )
