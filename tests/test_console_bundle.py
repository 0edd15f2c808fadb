"""The committed console bundle (api/static/console) is what its sources (console/) build to.

The test copies the sources to a temporary folder, installs the locked packages (`npm ci`) and
builds them (`vite build`), then compares every file with the committed bundle. When it fails,
rebuild: `cd console && npm ci && npm run build`, and commit api/static/console.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "console"
BUNDLE = ROOT / "api" / "static" / "console"
NPM = shutil.which("npm")


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_committed_bundle_is_served_by_the_package() -> None:
    index = (BUNDLE / "index.html").read_text()
    assert '<script type="module" crossorigin src="/assets/console.js">' in index
    assert "Content-Security-Policy" in index  # the key in session storage: no script from elsewhere
    assert (BUNDLE / "assets" / "console.js").stat().st_size > 100_000


@pytest.mark.slow
def test_the_committed_bundle_matches_a_fresh_build_of_the_sources(tmp_path: Path) -> None:
    if NPM is None:  # .ci/run installs it: in CI a missing npm is a failure, elsewhere a skip
        missing = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
        missing("needs npm (Node.js 20+) to rebuild the console")
    work = tmp_path / "console"
    shutil.copytree(SOURCES, work, ignore=shutil.ignore_patterns("node_modules"))
    out = tmp_path / "out"

    def npm(*args: str) -> None:
        done = subprocess.run([str(NPM), *args], cwd=work, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    npm("ci", "--no-audit", "--no-fund", "--prefer-offline")
    npm("run", "build", "--", "--outDir", str(out), "--emptyOutDir")
    built, committed = _files(out), _files(BUNDLE)
    assert sorted(built) == sorted(committed), "the bundle's files differ: rebuild with `npm run build` in console/"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"stale bundle files {stale}: rebuild with `cd console && npm ci && npm run build`"
