"""`file.save`: write a value into the run's output folder, and nowhere else.

The file name is relative to `RunConfig.out_dir` (the CLI's `--out`). Absolute paths,
`..` components and anything that resolves outside the folder (through a symbolic link
too) are refused. The node outputs the saved file's path *relative to the output folder*
as Text (`"thumbs/scene_1.png"`): a path that means the same on every machine and in
every run record, where an absolute one would leak local folders.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from pydantic import BaseModel

from nodeloom.core.artifacts import ArtifactRef, ArtifactStore
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.spec import node
from nodeloom.core.values import value_to_json


def _refused(filename: str, why: str) -> NodeExecutionError:
    return NodeExecutionError(
        f"file.save: refused file name {filename!r}: {why}; give a path relative to the output folder "
        "such as 'storyboard.json' or 'thumbs/scene_1.png'",
        retryable=False,
        details={"filename": filename},
    )


def relative_name(filename: str) -> PurePosixPath:
    """Check a file name given to `file.save`: relative, no `..`, no drive, no backslash."""
    if not filename.strip():
        raise _refused(filename, "it is empty")
    if "\0" in filename or "\\" in filename:
        raise _refused(filename, "it contains a backslash or NUL character")
    if PurePosixPath(filename).is_absolute() or PureWindowsPath(filename).drive or filename.startswith("~"):
        raise _refused(filename, "it is an absolute path")
    path = PurePosixPath(filename)
    if ".." in path.parts:
        raise _refused(filename, "it contains a '..' component")
    if filename.endswith("/") or path.name in ("", "."):
        raise _refused(filename, "it names a folder, not a file")
    return path


def inside(root: Path, candidate: Path, filename: str) -> Path:
    """`candidate` with every symbolic link followed, provided it is still under `root`."""
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise _refused(filename, f"it leads outside the output folder (to {resolved})")
    return resolved


def _create_temporary(folder: Path) -> tuple[int, Path]:
    """A new file in `folder`, created as open() creates files: mode 0666 less the umask
    (tempfile.mkstemp would make it 0600, unreadable to the user's group whatever their umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        candidate = folder / f".tmp-{secrets.token_hex(8)}"
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"file.save: no free temporary file name in {folder}")


def _write(data: Any, target: Path, artifacts: ArtifactStore) -> None:
    """Write atomically: a temporary file in the same folder, then a rename, which replaces a
    symbolic link planted at `target` instead of writing through it."""
    fd, temporary = _create_temporary(target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, ArtifactRef):
                with artifacts.path(data).open("rb") as source:
                    shutil.copyfileobj(source, handle)
            elif isinstance(data, bytes):
                handle.write(data)
            elif isinstance(data, str):
                handle.write(data.encode("utf-8"))
            else:
                text = json.dumps(value_to_json(data, describe_unknown=True), indent=2, ensure_ascii=False)
                handle.write((text + "\n").encode("utf-8"))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@node("file.save", resources="io", deterministic=False, output="path")
def file_save(
    ctx: NodeContext,
    data: Annotated[Any, "text (written as UTF-8), an artifact (its bytes), or any JSON value (indented JSON)"],
    filename: Annotated[str, "path relative to the run's output folder; sub-folders are created"],
) -> str:
    """Save text, JSON or an artifact as a file in the run's output folder; returns its relative path."""
    out_dir = ctx.config.out_dir
    if out_dir is None:
        raise NodeExecutionError(
            "file.save: this run has no output folder; pass --out DIR to `nodeloom run`, "
            "or RunConfig(out_dir=...) to the executor",
            retryable=False,
        )
    name = relative_name(filename)
    if ArtifactRef.looks_like_json(data):
        data = ArtifactRef.from_json(data)
    elif isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    root = Path(out_dir).resolve()
    # the folder is checked before it is created, so a planted link cannot make us create folders elsewhere
    folder = inside(root, root.joinpath(*name.parent.parts), filename)
    folder.mkdir(parents=True, exist_ok=True)
    folder = inside(root, folder, filename)
    target = folder / name.name
    if target.is_symlink():
        inside(root, target, filename)
    if target.is_dir():
        raise _refused(filename, "a folder of that name exists")
    _write(data, target, ctx.artifacts)
    return name.as_posix()
