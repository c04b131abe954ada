from __future__ import annotations

from pathlib import Path

from sarm2_gym.algos.common.io import latest_snapshot, write_snapshot


def test_write_snapshot_prunes_old_snapshots_and_nothing_else(tmp_path: Path) -> None:
    """Only directories named like the snapshot (prefix + digits) are pruned: SPIRAL keeps its
    adapted reward model beside its round snapshots, and it must outlive them."""
    (tmp_path / "reward_model").mkdir()
    (tmp_path / "reward_model" / "config.json").write_text("{}")
    (tmp_path / "round_notes").mkdir()
    for r in range(1, 5):
        write_snapshot(tmp_path, f"round_{r:04d}", lambda d, r=r: (d / "r.txt").write_text(f"{r}"))
    kept = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert kept == ["reward_model", "round_0003", "round_0004", "round_notes"]
    latest = latest_snapshot(tmp_path)
    assert latest is not None and (latest / "r.txt").read_text() == "4"
