"""Run mypy on the `nodeloom` package as it is laid out when installed.

The source folders (`core/`, `node_registry/`, ...) become `nodeloom.core`, ... only
through the package mapping of pyproject.toml, which mypy cannot follow. This script
builds that layout from symbolic links in a temporary folder and checks it.

Usage: python tools/typecheck.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_layout(root: Path) -> Path:
    mapping: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    package = root / "nodeloom"
    package.mkdir()
    for entry in (REPO / mapping["nodeloom"]).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        if name != "nodeloom":
            (package / name.split(".", 1)[1]).symlink_to(REPO / folder, target_is_directory=True)
    return package


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=str(REPO / ".mypy_cache"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_layout(Path(tmp))
        mypy = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
                "--cache-dir", args.cache_dir]
        env = {**os.environ, "MYPYPATH": tmp}
        scripts = sorted(str(p) for folder in ("bench", "tools") for p in (REPO / folder).glob("*.py"))
        package = subprocess.call([*mypy, "-p", "nodeloom"], cwd=tmp, env=env)
        loose = subprocess.call([*mypy, *scripts], cwd=tmp, env=env)
        return package or loose


if __name__ == "__main__":
    raise SystemExit(main())
