"""Run mypy on the `nodeloom` package as it is laid out when installed.

The source folders (`core/`, `node_registry/`, ...) become `nodeloom.core`, ... only
through the package mapping of pyproject.toml, which mypy cannot follow. This script
builds that layout from symbolic links inside the cache folder and checks it. The layout's
path stays the same from run to run, so mypy's incremental (SQLite) cache stays valid and a
re-run only re-checks the modules that changed.

Usage: python tools/typecheck.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _link(link: Path, target: Path) -> None:
    """Point `link` at `target`, atomically, so two checks running at once never see a half-built layout."""
    if link.is_symlink() and link.readlink() == target:
        return
    staged = link.with_name(f".{link.name}.{os.getpid()}")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target, target_is_directory=target.is_dir())
    staged.replace(link)


def build_layout(root: Path) -> Path:
    mapping: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    package = root / "nodeloom"
    package.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name: entry for entry in (REPO / mapping["nodeloom"]).iterdir() if entry.name != "__pycache__"}
    wanted |= {name.split(".", 1)[1]: REPO / folder for name, folder in mapping.items() if name != "nodeloom"}
    for name, target in wanted.items():
        _link(package / name, target)
    for stale in package.iterdir():
        if stale.name not in wanted and stale.is_symlink() and not stale.name.startswith("."):
            stale.unlink(missing_ok=True)
    return package


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=str(REPO / ".mypy_cache"))
    args = parser.parse_args()
    cache = Path(args.cache_dir).resolve()
    layout = cache / "layout"
    build_layout(layout)
    mypy = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
            "--cache-dir", str(cache), "--sqlite-cache", "--incremental"]
    env = {**os.environ, "MYPYPATH": str(layout)}
    scripts = sorted(str(p) for folder in ("bench", "tools") for p in (REPO / folder).glob("*.py"))
    package = subprocess.call([*mypy, "-p", "nodeloom"], cwd=layout, env=env)
    loose = subprocess.call([*mypy, *scripts], cwd=layout, env=env)
    return package or loose


if __name__ == "__main__":
    raise SystemExit(main())
