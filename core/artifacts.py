"""Artifacts: large values (images, audio, video, tensors, files) stored once, by content.

Nodes exchange `ArtifactRef` values: a small, JSON-serialisable reference (digest, media
type, size, kind). The bytes live in an `ArtifactStore`; the local store keeps them in a
folder, sharded by the first two hex digits of the SHA-256 digest, written atomically so a
crash never leaves a half-written artifact behind a valid reference. `FsspecArtifactStore`
keeps the same layout at any fsspec URL (`s3://bucket/prefix`, `gs://...`, `memory://...`),
for workers on several machines; `open_artifact_store` picks the store for a path or URL.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nodeloom.core.errors import ArtifactNotFoundError, ArtifactStoreError

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


class FsspecArtifactStore:
    """A content-addressed store at an fsspec URL (`<url>/ab/abcdef...`), shared by machines.

    Writes go to a temporary name first and are renamed into place on file systems where
    writing is not atomic (local, NFS-like); object stores (S3, GCS, ...) publish an object
    whole, so it is written in place. `path()` needs a local file: the artifact is downloaded
    once into a local cache folder (checked against its digest) and that copy is returned.
    Credentials and endpoints come from the file system's usual settings (for S3: the AWS
    environment variables such as `AWS_ENDPOINT_URL`, or `FSSPEC_S3_*` variables).
    """

    def __init__(self, url: str, cache: str | os.PathLike[str] | None = None, **storage_options: Any) -> None:
        try:
            import fsspec  # type: ignore[import-untyped]
        except ImportError:
            raise ArtifactStoreError(
                f"artifact store {url!r} needs the Python package 'fsspec' (and its file system, e.g. s3fs): "
                "pip install fsspec s3fs",
                details={"url": url, "missing": "fsspec"},
            ) from None
        self.url = url.rstrip("/")
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        except (ImportError, ValueError) as error:
            raise ArtifactStoreError(
                f"cannot open artifact store {url!r}: {error}", details={"url": url, "cause": str(error)}
            ) from None
        self.root = str(root).rstrip("/")
        self._atomic_writes = not _is_local(self.fs)
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        folder = Path(cache) if cache is not None else default_artifact_root() / "remote" / digest
        self.cache = LocalArtifactStore(folder)

    def _location(self, digest: str) -> str:
        return f"{self.root}/{digest[:2]}/{digest}"

    def put_bytes(self, data: bytes, media_type: str, kind: str | None = None) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self._location(digest)
        if not self._exists(target):
            if self._atomic_writes:
                self.fs.pipe_file(target, data)
            else:
                temporary = f"{target}.tmp-{uuid.uuid4().hex}"
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.pipe_file(temporary, data)
                self.fs.mv(temporary, target)
        return ArtifactRef(digest, media_type, len(data), kind or kind_for_media_type(media_type))

    def put_file(self, path: str | os.PathLike[str], media_type: str | None = None) -> ArtifactRef:
        source = Path(path)
        media = media_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        # hashing and copying the file through the local cache keeps one code path for both steps
        local = self.cache.put_file(source, media)
        target = self._location(local.digest)
        if not self._exists(target):
            if self._atomic_writes:
                self.fs.put_file(str(self.cache.path(local)), target)
            else:
                temporary = f"{target}.tmp-{uuid.uuid4().hex}"
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(self.cache.path(local)), temporary)
                self.fs.mv(temporary, target)
        return local

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        if self.cache.exists(ref):
            return self.cache.read_bytes(ref)
        try:
            data: bytes = self.fs.cat_file(self._location(ref.digest))
        except FileNotFoundError:
            raise self._missing(ref) from None
        return data

    def path(self, ref: ArtifactRef) -> Path:
        if not self.cache.exists(ref):
            data = self.read_bytes(ref)
            if hashlib.sha256(data).hexdigest() != ref.digest:
                raise ArtifactStoreError(
                    f"artifact sha256:{ref.digest} at {self.url} does not match its digest (corrupted or replaced)",
                    details={"digest": ref.digest, "store": self.url},
                )
            self.cache.put_bytes(data, ref.media_type, ref.kind)
        return self.cache.path(ref)

    def exists(self, ref: ArtifactRef) -> bool:
        return self.cache.exists(ref) or self._exists(self._location(ref.digest))

    def _exists(self, location: str) -> bool:
        # listings may be cached: a stale "missing" only costs a second, identical upload
        self.fs.invalidate_cache(location)
        return bool(self.fs.exists(location))

    def _missing(self, ref: ArtifactRef) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(
            f"artifact sha256:{ref.digest} is not in the store at {self.url}",
            details={"digest": ref.digest, "store": self.url},
        )


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def open_artifact_store(location: str | os.PathLike[str]) -> ArtifactStore:
    """The store for a folder, a `file://` URL (both: `LocalArtifactStore`) or another fsspec URL
    (`FsspecArtifactStore`), as `NODELOOM_ARTIFACTS` names it."""
    text = os.fspath(location)
    if "://" not in text:
        return LocalArtifactStore(text)
    if text.startswith("file://"):
        return LocalArtifactStore(text.removeprefix("file://"))
    return FsspecArtifactStore(text)


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
