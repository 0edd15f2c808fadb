"""What a running node can see of its run: progress, cancellation, artifacts, configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeloom.core.artifacts import ArtifactRef, ArtifactStore, load_tensor, put_tensor
from nodeloom.core.errors import RunCancelledError

if TYPE_CHECKING:
    from nodeloom.core.cache import ResultCache
    from nodeloom.core.catalog import NodeCatalog


@dataclass(frozen=True)
class RunConfig:
    """Per-run settings every node can read. Never holds secrets: those come from the environment."""

    #: let network nodes reach private, loopback and link-local addresses
    allow_private_network: bool = False
    #: where nodes that write files (file.save) put them; None means "no output folder"
    out_dir: Path | None = None
    #: free-form settings for node packs (for example the default LLM provider)
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: the result cache of the run: True for the executor's own, None or False for none, or a `ResultCache`
    #: (kept in this process only: `to_json` leaves it out)
    cache: ResultCache | bool | None = field(default=True, compare=False)
    #: decisions at approval nodes, by node id: `{"action": "approve" | "reject", "reason"?, "value"?}`
    approvals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "allow_private_network": self.allow_private_network,
            "out_dir": None if self.out_dir is None else str(self.out_dir),
            "settings": dict(self.settings),
            "approvals": {node: dict(decision) for node, decision in self.approvals.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        out_dir = data.get("out_dir")
        return cls(
            allow_private_network=bool(data.get("allow_private_network")),
            out_dir=None if out_dir is None else Path(out_dir),
            settings=dict(data.get("settings") or {}),
            approvals=dict(data.get("approvals") or {}),
        )


def _never_cancelled() -> bool:
    return False


def _ignore_progress(done: float, total: float | None, message: str) -> None:
    return None


class NodeContext:
    """Passed to a node function that declares a parameter annotated `NodeContext`."""

    __slots__ = (
        "_is_cancelled", "_on_progress", "artifacts", "attempt", "cache", "catalog", "config", "device", "node_id",
        "run_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        node_id: str,
        artifacts: ArtifactStore,
        config: RunConfig | None = None,
        attempt: int = 1,
        device: str | None = None,
        on_progress: Callable[[float, float | None, str], None] = _ignore_progress,
        is_cancelled: Callable[[], bool] = _never_cancelled,
        catalog: NodeCatalog | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.artifacts = artifacts
        self.config = config or RunConfig()
        self.attempt = attempt
        #: the device lane this node runs on ("cuda:0", "cpu"), for gpu nodes
        self.device = device
        self._on_progress = on_progress
        self._is_cancelled = is_cancelled
        #: the node types of the run, for nodes that run other nodes (control.map)
        self.catalog = catalog
        #: the run's result cache (None when the run is not cached), for nodes that run other
        #: nodes and cache each of those calls (control.map's items)
        self.cache = cache

    @property
    def cancelled(self) -> bool:
        return self._is_cancelled()

    def check_cancelled(self) -> None:
        """Raise `RunCancelledError` if the run was cancelled or this node timed out."""
        if self._is_cancelled():
            raise RunCancelledError(f"node {self.node_id!r} stopped: its run was cancelled or it timed out")

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report progress (`done` of `total` units) and stop here if the run was cancelled."""
        self.check_cancelled()
        self._on_progress(done, total, message)

    def put_bytes(self, data: bytes, media_type: str) -> ArtifactRef:
        return self.artifacts.put_bytes(data, media_type)

    def put_tensor(self, tensor: Any, kind: str = "tensor") -> ArtifactRef:
        return put_tensor(self.artifacts, tensor, kind)

    def load_tensor(self, ref: ArtifactRef) -> Any:
        return load_tensor(self.artifacts, ref)
