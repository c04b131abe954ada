"""``sarm2 annotate DATASET``: label rollouts in the terminal, write progress curves as columns.

For each episode the annotator types short commands (frame indices, ``START`` inclusive,
``END`` exclusive)::

    seg 0 40 fast        add a segment (fast / slow / adjust / mistake / catastrophic)
    del 1                delete segment 1        clear    delete all segments
    cat 55               catastrophic failure at frame 55  (cat none: remove it)
    final 0.6            final progress (reached just before a catastrophic frame)
    show                 segments and a preview of the progress curve
    done                 save and go to the next episode
    skip / quit / help

Annotations are stored, one save per episode (atomic), in ``DATASET/meta/rollout_annotations.json``
(the reference labeller's field names, frame units), so a session can stop and resume at any
point. At the end the progress curves (:func:`~sarm2_gym.real.annotation.progress_curve`) and
rewards are written as per-frame dataset columns ``annotated_progress`` and ``annotated_reward``,
with a boolean ``annotated`` column marking the episodes that have labels.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from sarm2_gym.common.files import atomic_write
from sarm2_gym.data import LeRobotDataset, add_frame_columns
from sarm2_gym.real.annotation import (
    SLOPE_MULTIPLIERS,
    RolloutAnnotation,
    Segment,
    progress_curve,
    reward_from_progress,
)

__all__ = [
    "ANNOTATIONS_FILE",
    "AnnotationSession",
    "EpisodeEntry",
    "load_annotations",
    "write_annotation_columns",
]

ANNOTATIONS_FILE: Final[str] = "meta/rollout_annotations.json"
PROGRESS_COLUMN: Final[str] = "annotated_progress"
REWARD_COLUMN: Final[str] = "annotated_reward"
FLAG_COLUMN: Final[str] = "annotated"
_SPARK: Final[str] = " ▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class EpisodeEntry:
    """What the annotator is shown about one episode."""

    index: int
    length: int
    task: str = ""
    success: bool | None = None


# ---------------------------------------------------------------------- dataset access


def list_episodes(root: str | Path) -> list[EpisodeEntry]:
    """Index, length, task and recorded success of every episode of a LeRobot v3 dataset."""
    out = []
    for row in LeRobotDataset(root).episodes_meta:
        tasks = row.get("tasks") or [""]
        success = row.get("success")
        out.append(
            EpisodeEntry(
                int(row["episode_index"]),
                int(row["length"]),
                str(tasks[0]),
                None if success is None else bool(success),
            )
        )
    return out


def write_annotation_columns(
    root: str | Path, curves: dict[int, np.ndarray], lengths: dict[int, int]
) -> None:
    """Write the per-frame columns ``annotated_progress``, ``annotated_reward`` and ``annotated``.

    A dataset column covers every episode, so episodes without an annotation get zeros and
    ``annotated = False``; training code selects frames with ``annotated``.

    Args:
        root: Dataset directory (no writer may have it open).
        curves: ``{episode_index: progress (T,)}`` of the annotated episodes.
        lengths: ``{episode_index: T}`` of every episode of the dataset.
    """
    progress, reward, flag = {}, {}, {}
    for ep, n in lengths.items():
        p = curves.get(ep)
        p = np.zeros(n) if p is None else np.asarray(p)
        progress[ep] = p.astype(np.float32)
        reward[ep] = reward_from_progress(p).astype(np.float32)
        flag[ep] = np.full(n, ep in curves, dtype=np.bool_)
    add_frame_columns(
        root,
        {PROGRESS_COLUMN: progress, REWARD_COLUMN: reward, FLAG_COLUMN: flag},
        overwrite=True,
    )


def load_annotations(root: str | Path) -> dict[int, dict[str, Any]]:
    """``{episode_index: record}`` from ``meta/rollout_annotations.json`` (empty if none)."""
    path = Path(root) / ANNOTATIONS_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {int(k): v for k, v in data.get("episodes", {}).items()}


def _save_annotations(root: Path, records: dict[int, dict[str, Any]]) -> None:
    path = root / ANNOTATIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "units": "frames",
        "protocol": "SARM2 rollout annotation (spec §2.3): slopes fast +2s, slow +1s, adjust 0, "
        "mistake -1s; progress 0 from the catastrophic frame on",
        "episodes": {str(k): records[k] for k in sorted(records)},
    }
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8"))


# ---------------------------------------------------------------------- the session


def sparkline(values: np.ndarray, width: int = 60) -> str:
    """A one-line plot of values in [0, 1]."""
    idx = np.linspace(0, len(values) - 1, min(width, len(values))).round().astype(int)
    levels = np.clip(np.asarray(values)[idx], 0.0, 1.0) * (len(_SPARK) - 1)
    return "".join(_SPARK[round(v)] for v in levels)


class _Draft:
    """The annotation being edited."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.segments: list[Segment] = []
        self.final: float | None = None
        self.catastrophic: int | None = None

    def build(self) -> RolloutAnnotation:
        if self.final is None:
            raise ValueError("set the final progress first: final P")
        return RolloutAnnotation(tuple(self.segments), self.final, self.catastrophic)


class AnnotationSession:
    """Interactive annotation of a dataset's episodes.

    Args:
        root: Dataset directory.
        input_fn: Reads one command line, given a prompt (``input``; inject for tests).
        print_fn: Prints a message.
        annotator: Name stored with each annotation.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        input_fn: Callable[[str], str] = input,
        print_fn: Callable[..., None] = print,
        annotator: str = "",
    ) -> None:
        self.root = Path(root)
        self.input_fn, self.print_fn = input_fn, print_fn
        self.annotator = annotator
        self.episodes = {e.index: e for e in list_episodes(self.root)}
        self.records = load_annotations(self.root)

    def run(
        self, episodes: list[int] | None = None, *, redo: bool = False, write_columns: bool = True
    ) -> int:
        """Annotate episodes (default: all not yet annotated); return how many were saved."""
        todo = episodes if episodes is not None else sorted(self.episodes)
        saved = 0
        for ep in todo:
            if ep not in self.episodes:
                raise KeyError(f"episode {ep} is not in the dataset")
            if ep in self.records and not redo:
                continue
            result = self.annotate(self.episodes[ep])
            if result == "quit":
                break
            if isinstance(result, RolloutAnnotation):
                self._store(ep, result)
                saved += 1
        if write_columns and self.records:
            self.write_columns()
        return saved

    def write_columns(self) -> dict[int, np.ndarray]:
        """Recompute every stored annotation's curve and write the dataset columns."""
        curves = {
            ep: progress_curve(RolloutAnnotation.from_dict(rec["label"]), self.episodes[ep].length)
            for ep, rec in self.records.items()
            if ep in self.episodes
        }
        lengths = {ep: e.length for ep, e in self.episodes.items()}
        write_annotation_columns(self.root, curves, lengths)
        self.print_fn(f"Wrote {PROGRESS_COLUMN} / {REWARD_COLUMN} for {len(curves)} episodes.")
        return curves

    def annotate(self, entry: EpisodeEntry) -> RolloutAnnotation | str:
        """Run the command loop for one episode: the annotation, ``"skip"`` or ``"quit"``."""
        draft = _Draft(entry.length)
        label = "" if entry.success is None else f", recorded success={entry.success}"
        self.print_fn(f"\nEpisode {entry.index}: {entry.length} frames, task {entry.task!r}{label}")
        self.print_fn(
            "Commands: seg START END LABEL | del I | clear | cat F | final P | show | done | "
            "skip | quit | help"
        )
        while True:
            try:
                line = self.input_fn(f"ep {entry.index}> ").strip()
            except EOFError:
                return "quit"
            if not line:
                continue
            cmd, *args = line.split()
            try:
                outcome = self._command(draft, cmd.lower(), args)
            except (ValueError, IndexError) as exc:
                self.print_fn(f"error: {exc}")
                continue
            if outcome is not None:
                return outcome

    def _command(self, draft: _Draft, cmd: str, args: list[str]) -> RolloutAnnotation | str | None:
        n = draft.length
        if cmd == "seg":
            start, end, label = int(args[0]), int(args[1]), args[2]
            if not 0 <= start < end <= n:
                raise ValueError(f"need 0 <= START < END <= {n}")
            seg = Segment(start, end, label.lower())
            RolloutAnnotation((*draft.segments, seg), 0.0)  # validates overlap
            draft.segments = sorted([*draft.segments, seg], key=lambda s: s.start)
        elif cmd == "del":
            draft.segments.pop(int(args[0]))
        elif cmd == "clear":
            draft.segments = []
        elif cmd == "cat":
            if args[0].lower() == "none":
                draft.catastrophic = None
            else:
                frame = int(args[0])
                if not 0 <= frame < n:
                    raise ValueError(f"catastrophic frame must be in [0, {n})")
                draft.catastrophic = frame
        elif cmd == "final":
            value = float(args[0])
            if not 0.0 <= value <= 1.0:
                raise ValueError("final progress must be in [0, 1]")
            draft.final = value
        elif cmd == "show":
            self._show(draft)
        elif cmd == "done":
            ann = draft.build()
            self._show(draft)
            return ann
        elif cmd == "skip":
            return "skip"
        elif cmd in ("quit", "exit"):
            return "quit"
        elif cmd == "help":
            self.print_fn(__doc__ or "")
            self.print_fn(f"Labels: {', '.join(SLOPE_MULTIPLIERS)} (or f/s/a/m/c)")
        else:
            raise ValueError(f"unknown command {cmd!r} (help lists them)")
        return None

    def _show(self, draft: _Draft) -> None:
        for i, s in enumerate(draft.segments):
            self.print_fn(f"  [{i}] {int(s.start):>5} - {int(s.end):<5} {s.label}")
        self.print_fn(f"  final={draft.final} catastrophic={draft.catastrophic}")
        if draft.final is not None:
            curve = progress_curve(draft.build(), draft.length)
            self.print_fn(f"  |{sparkline(curve)}| end={curve[-1]:.3f} max={curve.max():.3f}")

    def _store(self, ep: int, ann: RolloutAnnotation) -> None:
        self.records[ep] = {
            "label": ann.to_dict(),
            "length": self.episodes[ep].length,
            "annotator": self.annotator,
            "annotated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        _save_annotations(self.root, self.records)
        self.print_fn(f"Saved annotation of episode {ep}.")
