"""Cutting districts into turfs: the algorithm's invariants (geo.turfs), what the service
writes and keeps on a re-cut, the route's scope, the command, and real district shapes."""

import itertools
import os
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import shapely
from sqlmodel import col, select
from typer.testing import CliRunner

from api.auth.scope import Forbidden, Scope
from api.cli import app as cli_app
from api.errors import Unprocessable
from api.models import Role, Turf, TurfAddress, TurfLease, Visit, VisitStatus
from api.testing import generated_addresses
from api.turfs.cutting import cut_turfs
from geo.turfs import BALANCE_LIMIT, cut_district, walk_length, walking_order
from tests import factories as f

REALDATA = Path(
    os.environ.get("KNACKA_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
STOCKHOLM = REALDATA / "valmyndigheten-valdistrikt-2022" / "VD_01_20220910_Val_20220911.json"

# Hand-drawn districts in SWEREF 99 TM metres, in Stockholm.
X0, Y0 = 674_000.0, 6_580_000.0
L_SHAPE = shapely.Polygon(
    [(X0, Y0), (X0 + 1200, Y0), (X0 + 1200, Y0 + 500), (X0 + 500, Y0 + 500),
     (X0 + 500, Y0 + 1400), (X0, Y0 + 1400)]
)  # fmt: skip
TWO_ISLANDS = shapely.MultiPolygon(
    [shapely.box(X0, Y0, X0 + 600, Y0 + 600), shapely.box(X0 + 900, Y0, X0 + 1300, Y0 + 400)]
)


def _cut(district, addresses, **kw):
    buildings = [f"{s}|{n}" for s, n in zip(addresses.streets, addresses.numbers, strict=True)]
    return cut_district(
        addresses.xy,
        addresses.households,
        district=district,
        crs="EPSG:3006",
        buildings=buildings,
        streets=addresses.streets,
        numbers=addresses.numbers,
        **kw,
    )


@pytest.fixture(scope="module")
def l_addresses():
    return generated_addresses(L_SHAPE, households=1500, seed=7)


# -- the algorithm ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bisection", "strips"])
def test_every_address_is_in_exactly_one_turf_and_turfs_are_balanced(l_addresses, method):
    cut = _cut(L_SHAPE, l_addresses, target=60, method=method)
    members = np.concatenate([t.addresses for t in cut.turfs])
    assert sorted(members.tolist()) == list(range(len(l_addresses.xy)))
    for label, turf in enumerate(cut.turfs):
        assert (cut.labels[turf.addresses] == label).all()
        assert turf.households == l_addresses.households[turf.addresses].sum()
        alone = len(turf.addresses) == 1
        assert turf.households <= BALANCE_LIMIT * 60 or alone
    assert len(cut.turfs) >= round(l_addresses.households.sum() / 60)


def test_a_big_entrance_is_a_turf_of_its_own_and_small_buildings_stay_whole():
    xy = np.array([[X0 + 100 + 10 * i, Y0 + 100] for i in range(40)] + [[X0 + 300, Y0 + 300]] * 4)
    households = np.array([3] * 40 + [150, 2, 2, 2])
    streets = [f"Väg {i // 8}" for i in range(40)] + ["Torget"] * 4
    numbers = [str(i % 8 + 1) for i in range(40)] + ["1", "2", "2", "2"]
    buildings = [f"{s}|{n}" for s, n in zip(streets, numbers, strict=True)]
    cut = cut_district(
        xy, households, district=L_SHAPE, crs="EPSG:3006", target=60, buildings=buildings
    )
    big = [t for t in cut.turfs if 40 in t.addresses]
    assert len(big) == 1 and big[0].addresses.tolist() == [40]
    # Torget 2 (three entrances, six households) is one building kept in one turf.
    assert len({cut.labels[i] for i in (41, 42, 43)}) == 1
    assert all(t.households <= BALANCE_LIMIT * 60 for t in cut.turfs if 40 not in t.addresses)


def test_a_big_building_is_cut_by_its_entrances():
    # One street number with ten entrances of 20 households: 200 households, not one turf.
    xy = np.array([[X0 + 100 + 10 * i, Y0 + 100] for i in range(10)])
    cut = cut_district(
        xy,
        np.full(10, 20),
        district=L_SHAPE,
        crs="EPSG:3006",
        target=60,
        buildings=["Höghuset|1"] * 10,
    )
    assert len(cut.turfs) >= 3
    assert all(t.households <= BALANCE_LIMIT * 60 for t in cut.turfs)


@pytest.mark.parametrize("method", ["bisection", "strips"])
def test_the_same_input_gives_the_same_turfs_and_identical_polygons(l_addresses, method):
    one = _cut(L_SHAPE, l_addresses, target=45, method=method)
    two = _cut(L_SHAPE, l_addresses, target=45, method=method)
    assert (one.labels == two.labels).all()
    assert [t.addresses.tolist() for t in one.turfs] == [t.addresses.tolist() for t in two.turfs]
    assert [shapely.to_wkb(t.polygon) for t in one.turfs] == [
        shapely.to_wkb(t.polygon) for t in two.turfs
    ]


@pytest.mark.parametrize("district", [L_SHAPE, TWO_ISLANDS], ids=["L", "islands"])
def test_turf_polygons_cover_the_district_without_gaps_or_overlaps(district):
    addresses = generated_addresses(district, households=900, seed=3)
    cut = _cut(district, addresses, target=60)
    polygons = [t.polygon for t in cut.turfs]
    assert len(polygons) > 5
    union = shapely.union_all(polygons)
    assert union.area == pytest.approx(district.area, rel=1e-9)
    assert union.difference(district).area < 1e-3  # nothing outside the border
    overlap = sum(a.intersection(b).area for a, b in itertools.combinations(polygons, 2))
    assert overlap < 1e-3
    for turf in cut.turfs:
        points = shapely.points(addresses.xy[turf.addresses])
        assert shapely.covers(turf.polygon.buffer(0.01), points).all()


def test_kept_addresses_stay_out_of_the_new_turfs(l_addresses):
    fixed = l_addresses.xy[:, 0] < X0 + 250
    cut = _cut(L_SHAPE, l_addresses, target=60, fixed=fixed)
    assert (cut.labels[fixed] == -1).all() and (cut.labels[~fixed] >= 0).all()
    union = shapely.union_all([t.polygon for t in cut.turfs])
    kept_points = shapely.points(l_addresses.xy[fixed])
    assert not shapely.within(kept_points, union.buffer(-0.01)).any()


def test_a_district_without_addresses_gets_no_turfs():
    cut = cut_district(np.empty((0, 2)), np.empty(0, dtype=int), district=L_SHAPE, crs="EPSG:3006")
    assert cut.turfs == [] and len(cut.labels) == 0


def test_one_place_takes_the_whole_district():
    xy = np.array([[X0 + 100, Y0 + 100]] * 3)
    cut = cut_district(xy, np.array([5, 5, 5]), district=L_SHAPE, crs="EPSG:3006")
    assert len(cut.turfs) == 1 and cut.turfs[0].polygon.area == pytest.approx(L_SHAPE.area)


def test_turfs_sharing_one_spot_each_get_a_part_of_the_map():
    # A block geocoded to one point for all its entrances: two entrances over the target.
    xy = np.array([[X0 + 100, Y0 + 100]] * 2 + [[X0 + 400, Y0 + 1000]])
    cut = cut_district(xy, np.array([70, 70, 1]), district=L_SHAPE, crs="EPSG:3006", target=60)
    assert len(cut.turfs) == 3
    assert all(t.polygon.area > 0 for t in cut.turfs)
    union = shapely.union_all([t.polygon for t in cut.turfs])
    assert union.area == pytest.approx(L_SHAPE.area, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [8, 25, 60])
def test_invariants_hold_on_many_small_generated_districts(seed, target):
    rng = np.random.default_rng(seed)
    w, h = rng.uniform(200, 1500, 2)
    district = shapely.box(X0, Y0, X0 + w, Y0 + h).difference(
        shapely.box(X0 + w / 3, Y0 + h / 3, X0 + w, Y0 + h / 2)
    )
    addresses = generated_addresses(district, households=int(rng.integers(5, 400)), seed=seed)
    cut = _cut(district, addresses, target=target)
    members = np.concatenate([t.addresses for t in cut.turfs])
    assert sorted(members.tolist()) == list(range(len(addresses.xy)))
    assert all(t.households <= BALANCE_LIMIT * target or len(t.addresses) == 1 for t in cut.turfs)
    polygons = [t.polygon for t in cut.turfs]
    assert shapely.union_all(polygons).area == pytest.approx(district.area, rel=1e-9)
    assert sum(a.intersection(b).area for a, b in itertools.combinations(polygons, 2)) < 1e-3


def test_walking_order_is_a_permutation_and_no_longer_than_the_street_draft():
    rng = np.random.default_rng(5)
    xy = np.column_stack([X0 + rng.uniform(0, 800, 70), Y0 + rng.uniform(0, 800, 70)])
    streets = [f"Gata {i % 7}" for i in range(70)]
    numbers = [str(i // 7 + 1) for i in range(70)]
    order = walking_order(xy, streets=streets, numbers=numbers)
    assert sorted(order.tolist()) == list(range(70))
    draft = sorted(range(70), key=lambda i: (streets[i], int(numbers[i]) % 2 == 0, i))
    assert walk_length(xy[order]) < walk_length(xy[draft])


def test_walking_order_goes_up_the_odd_side_and_down_the_even_side():
    # Two far-apart streets, numbers along each: the walk takes one street at a time.
    xy = np.array(
        [[X0 + 20 * n, Y0] for n in range(1, 7)] + [[X0 + 20 * n, Y0 + 5000] for n in (1, 2)]
    )
    streets = ["Ågatan"] * 6 + ["Bgatan"] * 2
    numbers = [str(n) for n in range(1, 7)] + ["1", "2"]
    order = walking_order(xy, streets=streets, numbers=numbers).tolist()
    assert set(order[:6]) == set(range(6)) or set(order[-6:]) == set(range(6))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"crs": "EPSG:4326"}, "crs"),
        ({"xy": np.array([[14.6, 63.1]])}, "xy"),
        ({"target": 0}, "target"),
        ({"households": np.array([-1])}, "households"),
        ({"households": np.array([1, 2])}, "households"),
        ({"method": "kmeans"}, "method"),
        ({"district": shapely.LineString([(X0, Y0), (X0 + 1, Y0)])}, "district"),
        ({"fixed": np.array([True, False])}, "fixed"),
    ],
)
def test_bad_input_is_a_named_value_error(kwargs, field):
    args = {
        "xy": np.array([[X0 + 10, Y0 + 10]]),
        "households": np.array([1]),
        "district": L_SHAPE,
        "crs": "EPSG:3006",
    } | kwargs
    with pytest.raises(ValueError, match=f"^{field}:"):
        cut_district(args.pop("xy"), args.pop("households"), **args)


# -- the service --------------------------------------------------------------------------------


@pytest.fixture
def world(session):
    p = f.partidistrikt(session)
    k = f.kommun(session, pd=p)
    fo = f.forening(session, k)
    d = f.district(session, k, "23800001", 0, fo)
    empty = f.district(session, k, "23800002", 1)
    f.addresses_in_district(session, d, 300, households=1)
    return k, fo, d, empty


def _live(session, district):
    return session.exec(
        select(Turf).where(Turf.district_id == district.id, col(Turf.retired_at).is_(None))
    ).all()


def test_cutting_writes_turfs_with_walking_order(session, world, clock):
    k, _, d, empty = world
    summary = cut_turfs(
        session=session,
        scope=Scope.operator(session),
        district_ids=[d.id, empty.id],
        households=50,
        now=clock.now,
    )
    turfs = _live(session, d)
    assert summary.created == len(turfs) == 6 and _live(session, empty) == []
    assert sorted(t.code for t in turfs) == sorted(f"23800001-{n}" for n in range(1, 7))
    assert len({t.link_code for t in turfs}) == 6
    assert all(len(t.link_code) == 10 for t in turfs)
    links = session.exec(select(TurfAddress)).all()
    assert len(links) == 300 and len({a.address_id for a in links}) == 300
    district_shape = shapely.from_wkb(d.geom_wkb)
    for turf in turfs:
        positions = sorted(a.position for a in links if a.turf_id == turf.id)
        assert positions == list(range(1, turf.address_count + 1))
        shape = shapely.from_wkb(turf.geom_wkb)
        assert shape.difference(district_shape).area < 1e-12
        assert turf.households <= BALANCE_LIMIT * 50 and turf.walk_length_m > 0
        assert shape.bounds == pytest.approx(
            (turf.min_lon, turf.min_lat, turf.max_lon, turf.max_lat)
        )
    assert summary.districts[1].model_dump()["created"] == 0


def test_a_recut_keeps_turfs_in_use_and_retires_the_rest(session, world, clock):
    k, fo, d, _ = world
    operator = Scope.operator(session)
    cut_turfs(session=session, scope=operator, district_ids=[d.id], households=50, now=clock.now)
    first = sorted(_live(session, d), key=lambda t: t.code)
    visited, leased, expired = first[0], first[1], first[2]
    some_address = session.exec(
        select(TurfAddress.address_id).where(TurfAddress.turf_id == visited.id)
    ).first()
    session.add(
        Visit(
            client_uuid=uuid.uuid4(),
            address_id=some_address,
            turf_id=visited.id,
            status=VisitStatus.not_home,
            day=clock.now.date(),
        )
    )
    session.add(
        TurfLease(turf_id=leased.id, forening_id=fo.id, expires_at=clock.now + timedelta(days=2))
    )
    session.add(
        TurfLease(turf_id=expired.id, forening_id=fo.id, expires_at=clock.now - timedelta(hours=1))
    )
    session.flush()
    kept_addresses = set(
        session.exec(
            select(TurfAddress.address_id).where(
                col(TurfAddress.turf_id).in_([visited.id, leased.id])
            )
        ).all()
    )
    later = clock.advance(days=1)
    summary = cut_turfs(
        session=session, scope=operator, district_ids=[d.id], households=40, now=later
    )
    row = summary.districts[0]
    assert (row.kept, row.retired) == (2, 4)
    live = _live(session, d)
    assert {visited.id, leased.id} <= {t.id for t in live}
    for turf in first[2:]:
        session.refresh(turf)
        assert turf.retired_at == later
    # New turfs are numbered after the highest code so far, and hold the other addresses.
    new = [t for t in live if t.id not in (visited.id, leased.id)]
    assert sorted(int(t.code.rsplit("-", 1)[1]) for t in new) == list(range(7, 7 + len(new)))
    new_addresses = session.exec(
        select(TurfAddress.address_id).where(col(TurfAddress.turf_id).in_([t.id for t in new]))
    ).all()
    assert len(new_addresses) == len(set(new_addresses)) == 300 - len(kept_addresses)
    assert not set(new_addresses) & kept_addresses


# -- the route and the command --------------------------------------------------------------


def test_the_route_cuts_a_kommun_with_the_configured_default(client, session, world, settings):
    k, *_ = world
    settings.turf_households = 100
    r = client.post("/turfs/cut", json={"kommun": k.code})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"] == 100 and body["created"] == 3
    assert [row["district"] for row in body["districts"]] == ["23800001", "23800002"]
    assert body["max_over_target"] <= BALANCE_LIMIT


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "exactly one"),
        ({"district": "23800001", "kommun": "2380"}, "exactly one"),
        ({"district": "23800001", "households": 0}, "households"),
    ],
)
def test_the_route_refuses_bad_bodies(client, world, body, field):
    r = client.post("/turfs/cut", json=body)
    assert r.status_code == 422 and field in r.text


def test_forening_leads_cut_only_their_own_forenings_districts(anon_client, session, world, clock):
    k, fo, d, empty = world
    lead = f.user(session, Role.forening_lead, fo)
    anon_client.headers.update(f.auth_headers(session, lead, clock.now))
    assert anon_client.post("/turfs/cut", json={"forening_id": fo.id}).status_code == 200
    # The unassigned district and the whole kommun are not theirs to cut.
    assert anon_client.post("/turfs/cut", json={"district": empty.code}).status_code == 403
    assert anon_client.post("/turfs/cut", json={"kommun": k.code}).status_code == 403
    assert anon_client.post("/turfs/cut", json={"district": "99999999"}).status_code == 403


def test_the_service_refuses_what_the_caller_does_not_lead(session, world, clock):
    k, fo, d, empty = world
    lead = f.user(session, Role.forening_lead, fo)
    with pytest.raises(Forbidden):
        cut_turfs(
            session=session,
            scope=Scope(session=session, user=lead),
            district_ids=[empty.id],
            households=60,
            now=clock.now,
        )
    with pytest.raises(Unprocessable, match="^households"):
        cut_turfs(
            session=session,
            scope=Scope.operator(session),
            district_ids=[d.id],
            households=0,
            now=clock.now,
        )


def test_the_command_cuts_a_district(cli_session, world):
    _, _, d, _ = world
    done = CliRunner().invoke(cli_app, ["cut-turfs", "--district", d.code, "--households", "75"])
    assert done.exit_code == 0, done.output
    assert "23800001: 4 created, 0 kept, 0 retired" in done.output
    bad = CliRunner().invoke(cli_app, ["cut-turfs", "--kommun", "2380", "--district", d.code])
    assert bad.exit_code == 1 and "exactly one" in bad.output
    missing = CliRunner().invoke(cli_app, ["cut-turfs", "--district", "nope"])
    assert missing.exit_code == 1 and "district nope does not exist" in missing.output


# -- real district shapes -------------------------------------------------------------------


@pytest.mark.skipif(not STOCKHOLM.exists(), reason="../shared/realdata is not present")
def test_no_turf_crosses_a_real_district_border():
    import geopandas as gpd

    frame = gpd.read_file(STOCKHOLM).set_crs(3006, allow_override=True)
    frame = frame.sort_values("Lkfv").reset_index(drop=True)
    sample = frame.iloc[::70]  # 20 districts from all over the län
    others = shapely.STRtree(frame.geometry.values)
    for i, (code, district) in enumerate(zip(sample["Lkfv"], sample.geometry, strict=True)):
        district = shapely.make_valid(district)
        addresses = generated_addresses(district, households=600, seed=i, prefix=code)
        cut = _cut(district, addresses, target=60)
        assert sum(len(t.addresses) for t in cut.turfs) == len(addresses.xy)
        for turf in cut.turfs:
            assert turf.polygon.difference(district).area < 1e-3, code
            for j in others.query(turf.polygon):
                if frame["Lkfv"].iloc[j] != code:
                    # Some real neighbours overlap a little already; a turf adds nothing.
                    neighbour = frame.geometry.iloc[j]
                    shared = district.intersection(neighbour).area
                    assert turf.polygon.intersection(neighbour).area <= shared + 1e-3, code
