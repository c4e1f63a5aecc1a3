#!/usr/bin/env python3
"""Refresh the vendored JavaScript from the npm registry at pinned versions: Leaflet for
the map page (shipped in the package) and axe-core for the accessibility test (tests only).

    python3 scripts/vendor_js.py

Needs Node's ``npm`` for refreshing only; Knacka itself never needs Node to install or run.
Each package is fetched with ``npm pack`` into a temporary directory and only its
distribution files and licence are kept."""

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (pinned version, target directory, files to keep from the package, as globs)
PACKAGES = {
    "leaflet": (
        "1.9.4",
        ROOT / "api" / "map" / "static" / "vendor" / "leaflet",
        ["dist/leaflet-src.esm.js", "dist/leaflet.css", "dist/images/*.png", "LICENSE"],
    ),
    "axe-core": (
        "4.10.3",
        ROOT / "tests" / "vendor" / "axe-core",
        # axe.min.js bundles third-party code whose notices are in LICENSE-3RD-PARTY.txt.
        ["axe.min.js", "LICENSE", "LICENSE-3RD-PARTY.txt"],
    ),
}


def _pack(name: str, version: str, tmp: Path) -> Path:
    """The package's tarball, as npm's own client fetches it (checksum verified)."""
    done = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--silent", "--pack-destination", str(tmp)],
        capture_output=True,
        text=True,
        check=True,
    )
    return tmp / done.stdout.strip().splitlines()[-1]


def refresh(name: str) -> None:
    """Replace the vendored files of ``name`` with its pinned version's."""
    version, target, patterns = PACKAGES[name]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tarball = _pack(name, version, tmp)
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp / "x", filter="data")
        package = tmp / "x" / "package"
        if target.exists():
            shutil.rmtree(target)
        for pattern in patterns:
            found = sorted(package.glob(pattern))
            if not found:
                raise SystemExit(f"{name}@{version}: no file matches {pattern}")
            for path in found:
                # dist/ is flattened: the page imports vendor/leaflet/leaflet-src.esm.js
                relative = path.relative_to(package)
                if relative.parts[0] == "dist":
                    relative = Path(*relative.parts[1:])
                out = target / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out)
        (target / "VERSION").write_text(f"{name}@{version} (npm)\n")
    print(f"{name}@{version} -> {target.relative_to(ROOT)}")


def main() -> int:
    for name in sys.argv[1:] or PACKAGES:
        refresh(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
