"""Artifacts: large values (images, audio, video, tensors, files) stored once, by content.

Nodes exchange `ArtifactRef` values: a small, JSON-serialisable reference (digest, media
type, size, kind). The bytes live in an `ArtifactStore`; the local store keeps them in a
folder, sharded by the first two hex digits of the SHA-256 digest, written atomically so a
crash never leaves a half-written artifact behind a valid reference.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nodeloom.core.errors import ArtifactNotFoundError

# kind -> the kind it is a special case of; `can_connect` and value checks follow this chain.
ARTIFACT_KIND_PARENTS: dict[str, str | None] = {
    "file": None,
    "image": "file",
    "audio": "file",
    "video": "file",
    "tensor": None,
    "latent": "tensor",
    "conditioning": "tensor",
}

_KIND_BY_MEDIA_PREFIX = {"image/": "image", "audio/": "audio", "video/": "video"}
# the system's MIME tables differ (audio/wav is unknown to some); these are the ones nodes write
_EXTENSIONS = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "audio/wav": ".wav", "audio/x-wav": ".wav",
    "audio/mpeg": ".mp3", "video/mp4": ".mp4", "application/json": ".json", "text/plain": ".txt",
}
_CHUNK = 1 << 20


def default_artifact_root() -> Path:
    """`$NODELOOM_HOME/artifacts` (`~/.nodeloom/artifacts` by default): the default local store."""
    return Path(os.environ.get("NODELOOM_HOME") or Path.home() / ".nodeloom") / "artifacts"


def kind_is_a(kind: str, ancestor: str) -> bool:
    """True when artifacts of `kind` may be used where `ancestor` artifacts are expected."""
    current: str | None = kind
    while current is not None:
        if current == ancestor:
            return True
        current = ARTIFACT_KIND_PARENTS.get(current)
    return False


def kind_for_media_type(media_type: str) -> str:
    for prefix, kind in _KIND_BY_MEDIA_PREFIX.items():
        if media_type.startswith(prefix):
            return kind
    return "file"


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A reference to stored content. Serialises to `{"$artifact": "sha256:...", ...}`."""

    digest: str
    media_type: str
    size: int
    kind: str = "file"

    def to_json(self) -> dict[str, Any]:
        return {
            "$artifact": f"sha256:{self.digest}",
            "media_type": self.media_type,
            "size": self.size,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Any) -> ArtifactRef:
        """Parse the JSON form; raises `ValueError` naming what is wrong."""
        if not isinstance(data, dict) or "$artifact" not in data:
            raise ValueError('an artifact reference is an object with a "$artifact" key')
        ident = data["$artifact"]
        if not isinstance(ident, str) or not ident.startswith("sha256:"):
            raise ValueError('"$artifact" must be a string "sha256:<64 hex digits>"')
        digest = ident.removeprefix("sha256:")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError('"$artifact" must be a string "sha256:<64 hex digits>"')
        media_type = data.get("media_type", "application/octet-stream")
        size = data.get("size", 0)
        kind = data.get("kind") or kind_for_media_type(str(media_type))
        if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool):
            raise ValueError('"media_type" must be a string and "size" an integer')
        if kind not in ARTIFACT_KIND_PARENTS:
            raise ValueError(f"unknown artifact kind {kind!r}")
        return cls(digest=digest, media_type=media_type, size=size, kind=kind)

    @staticmethod
    def looks_like_json(value: Any) -> bool:
        return isinstance(value, dict) and "$artifact" in value

    @property
    def extension(self) -> str:
        if self.kind in ("tensor", "latent", "conditioning"):
            return ".pt"
        return _EXTENSIONS.get(self.media_type) or mimetypes.guess_extension(self.media_type) or ".bin"


@runtime_checkable
class ArtifactStore(Protocol):
    """Where artifact bytes live. The local store is the default; others may be remote."""

    def put_bytes(self, data: bytes, media_type: str, kind: str | None = None) -> ArtifactRef: ...

    def put_file(self, path: str | os.PathLike[str], media_type: str | None = None) -> ArtifactRef: ...

    def read_bytes(self, ref: ArtifactRef) -> bytes: ...

    def path(self, ref: ArtifactRef) -> Path: ...

    def exists(self, ref: ArtifactRef) -> bool: ...


class LocalArtifactStore:
    """A content-addressed store in a local folder (`<root>/ab/abcdef...`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _location(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put_bytes(self, data: bytes, media_type: str, kind: str | None = None) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self._location(digest)
        if not target.exists():
            self._write_atomically(target, lambda handle: handle.write(data))
        return ArtifactRef(digest, media_type, len(data), kind or kind_for_media_type(media_type))

    def put_file(self, path: str | os.PathLike[str], media_type: str | None = None) -> ArtifactRef:
        source = Path(path)
        hasher = hashlib.sha256()
        with source.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        media = media_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        target = self._location(digest)
        if not target.exists():
            with source.open("rb") as src:
                self._write_atomically(target, lambda handle: shutil.copyfileobj(src, handle))
        return ArtifactRef(digest, media, source.stat().st_size, kind_for_media_type(media))

    def put_tensor(self, tensor: Any, kind: str = "tensor") -> ArtifactRef:
        """Store a torch tensor (saved with `torch.save`, loaded back with `weights_only=True`)."""
        import torch  # imported here: core must not require torch

        buffer = io.BytesIO()
        torch.save(tensor.detach().cpu(), buffer)
        return self.put_bytes(buffer.getvalue(), "application/x-torch", kind=kind)

    def load_tensor(self, ref: ArtifactRef) -> Any:
        import torch

        with self.path(ref).open("rb") as handle:
            return torch.load(handle, weights_only=True)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        return self.path(ref).read_bytes()

    def path(self, ref: ArtifactRef) -> Path:
        location = self._location(ref.digest)
        if not location.exists():
            raise ArtifactNotFoundError(
                f"artifact sha256:{ref.digest} is not in the store at {self.root}",
                details={"digest": ref.digest, "store": str(self.root)},
            )
        return location

    def exists(self, ref: ArtifactRef) -> bool:
        return self._location(ref.digest).exists()

    def _write_atomically(self, target: Path, write: Any) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise


def put_tensor(store: ArtifactStore, tensor: Any, kind: str = "tensor") -> ArtifactRef:
    """Store a torch tensor (saved with `torch.save`; loaded back with `weights_only=True`)."""
    import torch  # imported here: core must not require torch

    buffer = io.BytesIO()
    torch.save(tensor.detach().cpu(), buffer)
    return store.put_bytes(buffer.getvalue(), "application/x-torch", kind=kind)


def load_tensor(store: ArtifactStore, ref: ArtifactRef) -> Any:
    """Load a tensor stored by `put_tensor`; `weights_only=True` refuses pickled code."""
    import torch

    with store.path(ref).open("rb") as handle:
        return torch.load(handle, weights_only=True)
