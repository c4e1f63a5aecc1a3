"""The knacka command for operators: import, assignment, kommun lists, migrations."""

import json
import subprocess

from sqlmodel import select
from typer.testing import CliRunner

from api.cli import app
from api.models import Kommun
from api.testing import LiveServer, issue_token, knacka, knacka_argv
from tests import factories as f

runner = CliRunner()


def test_import_districts_prints_summary_and_json(cli_session, tmp_path):
    f.kommun(cli_session)
    path = f.write_geojson(tmp_path / "d.geojson", f.district_features(n=3))
    result = runner.invoke(app, ["import-districts", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 created, 0 updated, 0 unchanged, 0 missing from file" in result.stdout
    assert "2380 Östersund: 3 districts" in result.stdout
    again = runner.invoke(app, ["import-districts", str(path), "--json"])
    summary = json.loads(again.stdout)
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (0, 0, 3)


def test_import_districts_bad_file_exits_nonzero_and_writes_nothing(cli_session, tmp_path):
    f.kommun(cli_session)
    features = [f.feature("23800001"), f.feature("23800002", geometry=None)]
    path = f.write_geojson(tmp_path / "d.geojson", features)
    result = runner.invoke(app, ["import-districts", str(path)])
    assert result.exit_code == 1
    assert "features 23800002 have no geometry" in result.stderr
    assert f.district_count(cli_session) == 0


def test_import_districts_options_reach_the_reader(cli_session, tmp_path):
    f.kommun(cli_session)
    features = [f.feature("X1", Kod="N1", Namn="Norr", Kommun="2380", Hush=12)]
    path = f.write_geojson(tmp_path / "d.geojson", features)
    args = [
        "import-districts",
        str(path),
        "--code-column",
        "Kod",
        "--name-column",
        "Namn",
        "--kommun-column",
        "Kommun",
        "--households-column",
        "Hush",
        "--dry-run",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("dry run, nothing written: 1 districts read")
    assert f.district_count(cli_session) == 0


def test_import_districts_refuses_a_bad_option_in_one_line(cli_session, tmp_path):
    path = f.write_geojson(tmp_path / "d.geojson", f.district_features(n=1))
    result = runner.invoke(app, ["import-districts", str(path), "--name-column", "Na\nmn"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --name-column: Value error, holds a control character U+000A\n"
    )


def test_import_kommuner_and_assign_districts(cli_session, tmp_path):
    kommuner = tmp_path / "k.csv"
    kommuner.write_text(
        "municipality_code,municipality_name_short,county_code,county_name\n"
        "2380,Östersund,23,Jämtlands län\n2321,Åre,23,Jämtlands län\n"
    )
    result = runner.invoke(app, ["import-kommuner", str(kommuner)])
    assert (
        result.stdout.strip() == "1 partidistrikt created, 2 kommuner created, 0 kommuner updated"
    )
    assert runner.invoke(app, ["import-kommuner", str(kommuner)]).stdout.startswith(
        "0 partidistrikt created, 0 kommuner created"
    )
    ost = cli_session.exec(select(Kommun).where(Kommun.code == "2380")).one()
    frosön = f.forening(cli_session, ost)
    runner.invoke(
        app,
        [
            "import-districts",
            str(f.write_geojson(tmp_path / "d.geojson", f.district_features(n=2))),
        ],
    )
    csv = tmp_path / "a.csv"
    csv.write_text(f"district_code,forening\n23800001,{frosön.id}\n23800002,Okänd\n")
    bad = runner.invoke(app, ["assign-districts", str(csv)])
    assert bad.exit_code == 1 and "1 of 2 rows are invalid" in bad.stderr
    missing = runner.invoke(app, ["assign-districts", str(tmp_path / "none.csv")])
    assert missing.exit_code == 1 and missing.stderr.startswith("error: file: cannot read")
    csv.write_text(f"district_code,forening\n23800001,{frosön.id}\n")
    good = runner.invoke(app, ["assign-districts", str(csv)])
    assert good.stdout.strip() == "1 rows: 1 changed, 0 unchanged"


def test_real_command_commits_and_reports_exit_status(tmp_path):
    """The installed console script against a fresh SQLite file, outside any test transaction."""
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"

    def run(*args: str) -> subprocess.CompletedProcess:
        return knacka(url, *args, check=False)

    assert run("db", "upgrade").returncode == 0
    kommuner = tmp_path / "k.csv"
    kommuner.write_text(
        "municipality_code,municipality_name_short,county_code,county_name\n"
        "2380,Östersund,23,Jämtlands län\n"
    )
    assert run("import-kommuner", str(kommuner)).returncode == 0
    path = f.write_geojson(tmp_path / "d.geojson", f.district_features(n=4))
    first = run("import-districts", str(path), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] == 4
    second = json.loads(run("import-districts", str(path), "--json").stdout)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 4)
    junk = tmp_path / "junk.geojson"
    junk.write_text("nope")
    failed = run("import-districts", str(junk))
    assert failed.returncode == 1 and "cannot read junk.geojson" in failed.stderr


def test_serve_migrates_loads_demo_and_answers(tmp_path):
    """`knacka serve` on an empty SQLite file: the demo is there and /docs answers."""
    import httpx

    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    with LiveServer(url, tmp_path / "serve.log", command=knacka_argv("serve")) as server:
        base = server.base_url
        docs = httpx.get(f"{base}/docs", timeout=5)
        assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
        assert httpx.get(f"{base}/static-offline-docs/swagger-ui-bundle.js").status_code == 200
        assert httpx.get(f"{base}/districts/coverage", timeout=5).status_code == 401
        token = issue_token(url, "distrikt@example.org")
        coverage = httpx.get(
            f"{base}/districts/coverage", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).json()
        assert len(coverage) == 8 and sum(row["districts"] for row in coverage) == 83


def test_commands_on_an_unmigrated_database_say_what_to_run(tmp_path):
    """Each command that touches the database answers one line, not a traceback."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    path = f.write_geojson(tmp_path / "d.geojson", f.district_features(n=1))
    commands = [
        ["import-districts", str(path)],
        ["import-kommuner"],
        ["issue-token", "distrikt@example.org"],
        ["run-job", "nightly"],
        ["topic", "culture"],
    ]
    for args in commands:
        done = knacka(url, *args, check=False)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.strip() == (
            f"error: database: {url} has no tables yet; run `knacka db upgrade` first"
        ), args
    unreachable = knacka(
        "postgresql+psycopg://nobody@127.0.0.1:1/x", "import-kommuner", check=False
    )
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.startswith("error: database: cannot use postgresql+psycopg://")
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_import_kommuner_without_a_file_loads_the_shipped_list(cli_session):
    result = runner.invoke(app, ["import-kommuner"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "21 partidistrikt created, 290 kommuner created, 0 kommuner updated"
    )
    kiruna = cli_session.exec(select(Kommun).where(Kommun.code == "2584")).one()
    assert kiruna.name == "Kiruna"
    again = runner.invoke(app, ["import-kommuner"])
    assert again.stdout.strip() == "0 partidistrikt created, 0 kommuner created, 0 kommuner updated"
