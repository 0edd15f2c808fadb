"""The distribution: the built wheel holds every package under `nodeloom` and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = {"nodeloom": "sdk", "nodeloom.core": "core", "nodeloom.node_registry": "node_registry",
                   "nodeloom.executors": "executors", "nodeloom.agents": "agents", "nodeloom.api": "api"}


def source_packages() -> set[str]:
    """Every folder with an __init__.py under the mapped top-level folders, as a dotted name."""
    found = set()
    for package, folder in PACKAGE_FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *relative.parts]))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the sources, so the build leaves nothing in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for folder in PACKAGE_FOLDERS.values():
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    target = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    [built] = target.glob("nodeloom-*.whl")
    return built


def test_wheel_holds_every_package_and_no_top_level_strays(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"nodeloom"}
    packaged = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert packaged == source_packages()
    assert "nodeloom/core/py.typed" in names
    # the web console's bundle (package data), served by `nodeloom serve` at /
    assert {"nodeloom/api/static/console/index.html", "nodeloom/api/static/console/assets/console.js"} <= set(names)


def test_wheel_imports_on_its_own(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    code = (
        "import nodeloom, nodeloom.core, nodeloom.node_registry, nodeloom.executors, nodeloom.agents, nodeloom.api;"
        "from nodeloom import Graph, node, run;"
        "import nodeloom.cli;"
        "print(nodeloom.core.__file__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": ""}, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "nodeloom" / "core" / "__init__.py")


def test_the_development_install_maps_each_folder_to_its_package() -> None:
    import nodeloom
    import nodeloom.core
    import nodeloom.node_registry.text

    assert Path(nodeloom.__file__) == REPO / "sdk" / "__init__.py"
    assert Path(nodeloom.core.__file__) == REPO / "core" / "__init__.py"
    assert Path(nodeloom.node_registry.text.__file__) == REPO / "node_registry" / "text" / "__init__.py"


def test_torch_is_pinned() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in text
