"""The ``knacka`` command: the one entry point for operators."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlmodel import select

from api import db
from api.auth.scope import Scope
from api.districts.schemas import ImportOptions, ImportSummary
from api.errors import AppError
from api.settings import get_settings

__all__ = ["app", "main"]

app = typer.Typer(help="Knacka: canvassing and campaign field work.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(exc: AppError) -> None:
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    if isinstance(exc.details, list):
        for item in exc.details[:50]:
            typer.echo(f"  {item}", err=True)
    raise typer.Exit(code=1)


def _require_schema() -> None:
    """Stop with one line, not a traceback, unless the database is at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import SQLAlchemyError

    from api.migrate import alembic_config

    where = make_url(get_settings().database_url).render_as_string(hide_password=True)
    newest = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    try:
        with db.session_scope() as session:
            context = MigrationContext.configure(connection=session.connection())
            current = set(context.get_current_heads())
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        _fail(AppError(f"database: cannot use {where} ({reason})"))
    if current != newest:
        state = "has no tables yet" if not current else "is not at the newest migration"
        _fail(AppError(f"database: {where} {state}; run `knacka db upgrade` first"))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to DATABASE_URL."""
    from api.migrate import upgrade

    upgrade(get_settings().database_url)
    typer.echo("database is at the newest revision")


@app.command("import-districts")
def import_districts(
    path: Annotated[
        Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile or zipped Shapefile")
    ],
    crs: Annotated[
        str | None, typer.Option(help="CRS of a file that names none, e.g. EPSG:3006")
    ] = None,
    code_column: Annotated[str, typer.Option(help="Column with the district code")] = "Lkfv",
    name_column: Annotated[str, typer.Option(help="Column with the district name")] = "Vdnamn",
    kommun_column: Annotated[
        str | None, typer.Option(help="Column with the kommun code (default: code[:4])")
    ] = None,
    voters_column: Annotated[str | None, typer.Option(help="Column with voter counts")] = None,
    households_column: Annotated[
        str | None, typer.Option(help="Column with household counts")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and report; write nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Import districts in one transaction: the whole file, or nothing."""
    _require_schema()
    from api.districts.service import import_district_file

    try:
        options = ImportOptions(
            crs=crs,
            code_column=code_column,
            name_column=name_column,
            kommun_column=kommun_column,
            voters_column=voters_column,
            households_column=households_column,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        _fail(AppError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}"))
    if not as_json:
        typer.echo(f"reading {path} ...", err=True)
    with typer.progressbar(length=1, label="districts", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        try:
            with db.session_scope() as session:
                summary = import_district_file(
                    session=session,
                    scope=Scope.operator(session),
                    path=path,
                    options=options,
                    dry_run=dry_run,
                    progress=progress,
                )
        except AppError as exc:
            _fail(exc)
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        _print_summary(summary)


def _print_summary(s: ImportSummary) -> None:
    head = "dry run, nothing written: " if s.dry_run else ""
    typer.echo(
        f"{head}{s.features} districts read ({s.source_crs}): {s.created} created, "
        f"{s.updated} updated, {s.unchanged} unchanged, "
        f"{len(s.missing_from_file)} missing from file"
    )
    typer.echo(f"kommuner touched ({len(s.kommuner)}):")
    for k in s.kommuner:
        typer.echo(f"  {k.code} {k.name}: {k.districts_in_file} districts")
    if s.missing_from_file:
        typer.echo("in the database but not in this file (kept, not deleted):")
        typer.echo("  " + ", ".join(s.missing_from_file))
    for r in s.repaired:
        typer.echo(f"repaired invalid geometry of {r.code}: {r.reason}")
    for w in s.warnings:
        typer.secho(f"warning: {w}", fg="yellow")


@app.command("import-addresses")
def import_addresses(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV, GeoJSON, GeoPackage, or a zipped GeoJSON, GeoPackage or Shapefile"
        ),
    ],
    crs: Annotated[
        str | None, typer.Option(help="CRS of coordinates the file does not name")
    ] = None,
    kommun: Annotated[
        str | None, typer.Option(help="Join to this kommun's districts only (SCB code)")
    ] = None,
    key_column: Annotated[str | None, typer.Option(help="Stable object id column")] = None,
    street_column: Annotated[str | None, typer.Option(help="Street name column")] = None,
    number_column: Annotated[str | None, typer.Option(help="House number column")] = None,
    letter_column: Annotated[str | None, typer.Option(help="Letter after the number")] = None,
    entrance_column: Annotated[str | None, typer.Option(help="Entrance column")] = None,
    postcode_column: Annotated[str | None, typer.Option(help="Postcode column")] = None,
    postort_column: Annotated[str | None, typer.Option(help="Post town column")] = None,
    households_column: Annotated[
        str | None, typer.Option(help="Households per address (default: 1 each)")
    ] = None,
    x_column: Annotated[str | None, typer.Option(help="A CSV's x/longitude column")] = None,
    y_column: Annotated[str | None, typer.Option(help="A CSV's y/latitude column")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and report; write nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Import address points, joined to their districts, in one transaction."""
    _require_schema()
    from api.addresses.schemas import AddressImportOptions
    from api.addresses.service import import_address_file

    try:
        options = AddressImportOptions(
            crs=crs,
            key_column=key_column,
            street_column=street_column,
            number_column=number_column,
            letter_column=letter_column,
            entrance_column=entrance_column,
            postcode_column=postcode_column,
            postort_column=postort_column,
            households_column=households_column,
            x_column=x_column,
            y_column=y_column,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        _fail(AppError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}"))
    try:
        with db.session_scope() as session:
            s = import_address_file(
                session=session,
                scope=Scope.operator(session),
                path=path,
                options=options,
                kommun_code=kommun,
                dry_run=dry_run,
            )
    except AppError as exc:
        _fail(exc)
    if as_json:
        typer.echo(s.model_dump_json(indent=2))
        return
    head = "dry run, nothing written: " if s.dry_run else ""
    typer.echo(
        f"{head}{s.features} addresses read ({s.source_crs}, keyed by {s.key_source}): "
        f"{s.created} created, {s.updated} updated, {s.unchanged} unchanged, "
        f"{s.missing} missing from file (kept), {s.outside} outside every district"
    )
    if s.outside_rows:
        typer.echo("outside every district: " + ", ".join(s.outside_rows))
    if s.districts_without_addresses:
        typer.echo("districts without addresses: " + ", ".join(s.districts_without_addresses))
    for w in s.warnings:
        typer.secho(f"warning: {w}", fg="yellow")


@app.command("import-results")
def import_results_command(
    path: Annotated[Path, typer.Argument(help="Valmyndigheten's per-valdistrikt result CSV")],
    election: Annotated[str, typer.Option(help='The election, e.g. "Riksdag 2018"')],
    dry_run: Annotated[bool, typer.Option(help="Validate and report; write nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Import election results per district; the same election again replaces its rows."""
    _require_schema()
    from api.results.service import import_results

    try:
        raw = path.read_bytes()
    except OSError as exc:
        _fail(AppError(f"file: cannot read {path} ({exc.strerror})"))
    try:
        with db.session_scope() as session:
            s = import_results(session=session, election=election, raw=raw, dry_run=dry_run)
    except AppError as exc:
        _fail(exc)
    if as_json:
        typer.echo(s.model_dump_json(indent=2))
        return
    head = "dry run, nothing written: " if s.dry_run else ""
    typer.echo(
        f"{head}{s.election}: {s.rows} district rows, {s.districts_matched} matched a district, "
        f"{len(s.codes_unknown)} unknown codes, {s.collection_rows_skipped} "
        f"uppsamlingsdistrikt rows skipped; parties: {', '.join(s.parties)}"
    )
    if s.codes_unknown:
        typer.echo("codes without a district: " + ", ".join(s.codes_unknown[:50]))


@app.command("import-kommuner")
def import_kommuner(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="CSV of SCB codes, e.g. municipality_county.csv; "
            "default: the list shipped with Knacka (290 kommuner, 21 län)"
        ),
    ] = None,
    code_column: str = "municipality_code",
    name_column: str = "municipality_name_short",
    lan_code_column: str = "county_code",
    lan_name_column: str = "county_name",
) -> None:
    """Create partidistrikt and kommuner from an SCB code list; existing ones are renamed."""
    _require_schema()
    from api.org.kommunlist import shipped_kommun_csv
    from api.org.service import import_kommuner_csv

    if path is None:
        text = shipped_kommun_csv()
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(AppError(f"file: cannot read {path} as UTF-8 text ({exc})"))
    try:
        with db.session_scope() as session:
            counts = import_kommuner_csv(
                session=session,
                text=text,
                code_column=code_column,
                name_column=name_column,
                lan_code_column=lan_code_column,
                lan_name_column=lan_name_column,
            )
    except AppError as exc:
        _fail(exc)
    typer.echo(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


@app.command("assign-districts")
def assign_districts(
    path: Annotated[Path, typer.Argument(help="CSV with columns district_code,forening")],
) -> None:
    """Assign districts to föreningar from a CSV: every row, or none if any is invalid."""
    _require_schema()
    from api.districts.service import assign_bulk_csv

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(AppError(f"file: cannot read {path} as UTF-8 text ({exc})"))
    try:
        with db.session_scope() as session:
            result = assign_bulk_csv(
                session=session, scope=Scope.operator(session), text=text, via="cli"
            )
    except AppError as exc:
        _fail(exc)
    typer.echo(f"{result.rows} rows: {result.changed} changed, {result.unchanged} unchanged")


@app.command("cut-turfs")
def cut_turfs_command(
    kommun: Annotated[str | None, typer.Option(help="Cut every district of this kommun")] = None,
    district: Annotated[str | None, typer.Option(help="Cut this one district")] = None,
    households: Annotated[
        int | None, typer.Option(help="Households per turf (default KNACKA_TURF_HOUSEHOLDS)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Cut districts into turfs of about N households, keeping the turfs in use."""
    _require_schema()
    from api.models import utcnow
    from api.turfs.cutting import cut_request
    from api.turfs.cutting_schemas import CutRequest

    if (kommun is None) == (district is None):
        _fail(AppError("options: give exactly one of --kommun and --district"))
    try:
        request = CutRequest(kommun=kommun, district=district, households=households)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "options"
        _fail(AppError(f"{where}: {problem['msg']}"))
    try:
        with db.session_scope() as session:
            summary = cut_request(
                session=session,
                scope=Scope.operator(session),
                request=request,
                default_households=get_settings().turf_households,
                now=utcnow(),
            )
    except AppError as exc:
        _fail(exc)
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
        return
    for d in summary.districts:
        ratio = "-" if d.max_over_target is None else f"{d.max_over_target:.2f}"
        typer.echo(
            f"{d.district}: {d.created} created, {d.kept} kept, {d.retired} retired; "
            f"{d.households} households at {d.addresses} addresses; max/target {ratio}; "
            f"walks {d.walk_length_m / 1000:.1f} km"
        )
    typer.echo(
        f"{len(summary.districts)} districts: {summary.created} turfs created, "
        f"{summary.kept} kept, {summary.retired} retired (target {summary.target} households)"
    )


@app.command("import-members")
def import_members_command(
    path: Annotated[Path, typer.Argument(help="The party register's CSV export")],
    member_number_column: str = "member_number",
    name_column: str = "name",
    phone_column: str = "phone",
    email_column: str = "email",
    forening_column: str = "forening",
    kommun_column: str = "kommun",
    joined_column: str = "joined_on",
    status_column: str = "status",
    kommun: Annotated[
        str | None, typer.Option(help="SCB code of the kommun förening names are in")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only report what the import would do")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Import the member register: every row, or none if any is invalid (by member number)."""
    _require_schema()
    from api.contacts.rules import local_day
    from api.members.schemas import MemberImportOptions
    from api.members.service import import_members
    from api.models import utcnow

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(AppError(f"file: cannot read {path} as UTF-8 text ({exc})"))
    try:
        options = MemberImportOptions(
            member_number_column=member_number_column,
            name_column=name_column,
            phone_column=phone_column,
            email_column=email_column,
            forening_column=forening_column,
            kommun_column=kommun_column,
            joined_column=joined_column,
            status_column=status_column,
            kommun=kommun,
        )
    except ValidationError as exc:
        _fail(AppError(f"options: {exc.errors()[0]['msg']}"))
    settings = get_settings()
    try:
        with db.session_scope() as session:
            summary = import_members(
                session=session,
                scope=Scope.operator(session),
                text=text,
                options=options,
                settings=settings,
                today=local_day(utcnow(), settings.timezone),
                dry_run=dry_run,
            )
    except AppError as exc:
        _fail(exc)
    if as_json:
        typer.echo(summary.model_dump_json())
    else:
        typer.echo(
            ("dry run, nothing written: " if summary.dry_run else "")
            + f"{summary.rows} rows: {summary.created} created, {summary.updated} updated, "
            f"{summary.unchanged} unchanged, {summary.left} left; {summary.new_members} new "
            f"members to follow up; {summary.linked_volunteers} linked to volunteer accounts; "
            f"{summary.erased} erased before (skipped); {summary.missing_from_file} of the "
            "kommuner's members not in the file (kept)"
        )


@app.command("issue-token")
def issue_token(
    email: Annotated[str, typer.Argument(help="The user's email")],
    device: Annotated[str, typer.Option(help="A name for the device")] = "issued by knacka",
) -> None:
    """Print a new device token for a user (for scripts, and for trying the demo)."""
    _require_schema()
    from sqlalchemy import func

    from api.auth.service import issue_device_token
    from api.models import User, utcnow

    with db.session_scope() as session:
        user = session.exec(select(User).where(func.lower(User.email) == email.lower())).first()
        if user is None:
            _fail(AppError(f"email: no user with email {email}"))
        raw, _ = issue_device_token(session=session, user=user, name=device, now=utcnow())
    typer.echo(raw)


@app.command()
def scheduler() -> None:
    """Run the scheduled jobs (nightly snapshots and emails) in this process until stopped."""
    _require_schema()
    import logging

    from api.jobs import run_scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_scheduler()


@app.command("run-job")
def run_job(
    name: Annotated[str, typer.Argument(help="A job of api/jobs.py, e.g. nightly")],
    now: Annotated[
        str | None, typer.Option(help="Pretend it is this moment (ISO 8601 with offset)")
    ] = None,
) -> None:
    """Run one scheduled job once, now, and print what it did as JSON."""
    _require_schema()
    from datetime import datetime

    from api.jobs import JOBS

    job = next((j for j in JOBS if j.name == name), None)
    if job is None:
        _fail(AppError(f"name: no job {name!r}; jobs are {', '.join(j.name for j in JOBS)}"))
    moment = datetime.fromisoformat(now) if now else None
    if moment is not None and moment.tzinfo is None:
        _fail(AppError("now: give a UTC offset, e.g. 2026-09-01T02:30:00+02:00"))
    typer.echo(json.dumps(job.run(now=moment), default=str))


@app.command("render-email")
def render_email_command(
    email: Annotated[str, typer.Argument(help="The lead whose nightly email to render")],
    out: Annotated[Path, typer.Option(help="Folder to write the email into")] = Path("email"),
    day: Annotated[str | None, typer.Option(help="Report date (YYYY-MM-DD); default today")] = None,
) -> None:
    """Write a lead's nightly email to files (.eml, .txt, .html, .png) without sending it."""
    _require_schema()
    from datetime import date

    from sqlalchemy import func

    from api.contacts.rules import local_day
    from api.mail import text_of
    from api.models import User, utcnow
    from api.reports.render import render_email
    from api.reports.service import build_report

    settings = get_settings()
    today = date.fromisoformat(day) if day else local_day(utcnow(), settings.timezone)
    with db.session_scope() as session:
        user = session.exec(select(User).where(func.lower(User.email) == email.lower())).first()
        if user is None:
            _fail(AppError(f"email: no user with email {email}"))
        report = build_report(session=session, user=user, today=today)
        if report is None:
            _fail(AppError(f"day: no campaign of {email}'s partidistrikt runs on {today}"))
        message = render_email(report=report, settings=settings)
    out.mkdir(parents=True, exist_ok=True)
    (out / "email.eml").write_bytes(bytes(message))
    (out / "email.txt").write_text(text_of(message, "plain"), encoding="utf-8")
    (out / "email.html").write_text(text_of(message, "html"), encoding="utf-8")
    (out / "chart.png").write_bytes(report.chart_png)
    typer.echo(f"wrote {out}/email.eml, email.txt, email.html and chart.png")


@app.command("simulate")
def simulate(
    weeks: Annotated[int, typer.Option(help="Weeks of logging to simulate")] = 10,
    until: Annotated[str | None, typer.Option(help="Last simulated day (YYYY-MM-DD)")] = None,
    seed: int = 2030,
) -> None:
    """Log believable demo activity for the demo's volunteers, then build the snapshots."""
    _require_schema()
    from datetime import date, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from api.demo import simulate_logging
    from api.jobs import run_nightly

    last = date.fromisoformat(until) if until else None
    with db.session_scope() as session:
        result = simulate_logging(session=session, weeks=weeks, until=last, seed=seed)
    zone = ZoneInfo(get_settings().timezone)
    night_after = datetime.combine(result["until"] + timedelta(days=1), time(2, 30), zone)
    summary = run_nightly(now=night_after, emails=False)
    typer.echo(json.dumps({**result, "nightly": summary}, default=str))


@app.command()
def topic(
    code: Annotated[str, typer.Argument(help="The topic's code, e.g. culture")],
    label: Annotated[str | None, typer.Option(help="Its label in Swedish")] = None,
    retire: Annotated[bool, typer.Option(help="Stop offering it (old logs keep it)")] = False,
) -> None:
    """Add, relabel or retire a topic of the list phones offer (shared by all units)."""
    _require_schema()
    from api.models import Topic
    from api.topics.schemas import TopicCreate, TopicUpdate
    from api.topics.service import create_topic, update_topic

    try:
        with db.session_scope() as session:
            operator = Scope.operator(session)
            if session.get(Topic, code) is None:
                made = create_topic(
                    session=session,
                    scope=operator,
                    data=TopicCreate(code=code, label=label or code),
                )
                typer.echo(f"added {made.code}: {made.label}")
            if retire or label:
                data = TopicUpdate(label=label, active=False if retire else None)
                changed = update_topic(session=session, scope=operator, code=code, data=data)
                typer.echo(f"{changed.code}: {changed.label}, active={changed.active}")
    except AppError as exc:
        _fail(exc)
    except ValueError as exc:  # pydantic's validation error names the field
        _fail(AppError(str(exc)))


@app.command("load-demo")
def load_demo_command() -> None:
    """Load the Jämtland demo campaign (idempotent)."""
    _require_schema()
    from api.demo import load_demo

    with db.session_scope() as session:
        result = load_demo(session=session, districts_path=get_settings().demo_districts_path)
    typer.echo(f"demo loaded: {result}")


def _database_is_empty() -> bool:
    from api.models import Partidistrikt

    with db.session_scope() as session:
        return session.exec(select(Partidistrikt.id)).first() is None


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Load the demo first; by default only into an empty SQLite database",
        ),
    ] = None,
) -> None:
    """Migrate the database, load the demo on first start (SQLite), and serve the API."""
    import uvicorn

    from api.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    is_sqlite = make_url(settings.database_url).get_backend_name() == "sqlite"
    if demo or (demo is None and is_sqlite and _database_is_empty()):
        load_demo_command()
    db.get_engine().dispose()
    typer.echo(f"API docs: http://{host}:{port}/docs", err=True)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="info",
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
