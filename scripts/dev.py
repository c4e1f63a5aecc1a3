#!/usr/bin/env python3
"""Set up and run Knacka with nothing but Python 3.11+ and pip.

    python3 scripts/dev.py serve   # the API on SQLite with the Jämtland demo loaded
    python3 scripts/dev.py test    # the whole test suite (SQLite and PostgreSQL)

The first run creates ``.venv`` and installs the project into it; later runs reinstall only
when pyproject.toml has changed. Arguments after the command are passed on (to ``knacka
serve`` or to pytest).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def ensure_environment() -> None:
    stamp = VENV / ".knacka-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing Knacka and its dependencies into .venv ...", file=sys.stderr)
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[dev]",
        ],
        check=True,
    )
    stamp.write_text(digest)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"serve", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an old python3
        print("Knacka needs Python 3.11 or newer", file=sys.stderr)
        return 2
    ensure_environment()
    os.chdir(ROOT)
    if command == "serve":
        args = [str(BIN / "knacka"), "serve", *rest]
    else:
        args = [str(PYTHON), "-m", "pytest", *rest]
    return subprocess.run(args).returncode


if __name__ == "__main__":
    sys.exit(main())
