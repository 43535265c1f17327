"""Checkpoints: no code execution on load, checksums, shape checks, atomic commit, recovery.

Issue 17 items 4, 7 and 8. Pure file-level tests on real checkpoint files (no model): each
builds a checkpoint with :func:`checkpoint.write_state` + :func:`checkpoint.commit` exactly as
the trainer does.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from worldr1_core import checkpoint as ckpt
from worldr1_core.errors import UserError


def _tensors() -> list[torch.Tensor]:
    return [torch.randn(4, 8), torch.zeros(8, 4)]


def _save(run_dir: Path, step: int, keep_last: int = 0, extras: dict | None = None) -> Path:
    tmp = ckpt.begin(run_dir, step)
    state = ckpt.TrainerState(step=step, extras=extras or {"world_size": 1})
    ckpt.write_state(tmp, state, _tensors(), '[run]\nname = "t"\n')
    (tmp / "adapter").mkdir()
    (tmp / "adapter" / "weights.bin").write_bytes(b"\x00" * 64)
    return ckpt.commit(run_dir, step, keep_last=keep_last)


class _RunsCode:
    """Pickles to a call of os.system (what a crafted checkpoint can carry)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_trainer_state_does_not_run_code(tmp_path):
    final = _save(tmp_path / "run", 1)
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "extras": {"x": _RunsCode(marker)}}, final / "trainer_state.pt")
    ckpt.write_checksums(final)  # an attacker can recompute the checksums too
    with pytest.raises(ckpt.CheckpointError, match="trainer_state.pt: cannot be loaded safely"):
        ckpt.read_state(final)
    assert not marker.exists()


def test_flipped_byte_is_an_error_naming_the_file(tmp_path):
    final = _save(tmp_path / "run", 1)
    data = bytearray((final / "trainable.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (final / "trainable.pt").write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=r"trainable\.pt: checksum mismatch"):
        ckpt.read_state(final)
    # also a file of the adapter
    final2 = _save(tmp_path / "run2", 1)
    (final2 / "adapter" / "weights.bin").write_bytes(b"\x01" * 64)
    with pytest.raises(ckpt.CheckpointError, match=r"weights\.bin: checksum mismatch"):
        ckpt.read_state(final2)


def test_truncated_file_without_checksums_is_a_one_line_user_error(tmp_path):
    final = _save(tmp_path / "run", 1)
    (final / ckpt.CHECKSUMS).unlink()
    data = (final / "trainable.pt").read_bytes()
    (final / "trainable.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError) as err:
        ckpt.read_state(final)
    assert "trainable.pt" in str(err.value) and "\n" not in str(err.value)


def test_safe_state_round_trips_every_rng(tmp_path):
    torch.manual_seed(5)
    np.random.seed(6)
    random.seed(7)
    state = ckpt.TrainerState(step=3)  # captures every RNG
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    tmp = ckpt.begin(tmp_path / "run", 3)
    ckpt.write_state(tmp, state, _tensors(), "")
    final = ckpt.commit(tmp_path / "run", 3)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    loaded, trainable = ckpt.read_state(final)
    assert loaded.step == 3 and len(trainable) == 2
    ckpt.set_rng_state(loaded.rng)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_trainable_shapes_and_dtypes_are_checked():
    params = [torch.nn.Parameter(torch.zeros(4, 8)), torch.nn.Parameter(torch.zeros(8, 4))]
    ckpt.check_trainable(Path("c"), [torch.ones(4, 8), torch.ones(8, 4)], params)
    with pytest.raises(ckpt.CheckpointError, match=r"tensor 1 has shape \(8, 2\).*\(8, 4\)"):
        ckpt.check_trainable(Path("c"), [torch.ones(4, 8), torch.ones(8, 2)], params)
    with pytest.raises(ckpt.CheckpointError, match="torch.float64"):
        ckpt.check_trainable(Path("c"), [torch.ones(4, 8), torch.ones(8, 4).double()], params)
    with pytest.raises(ckpt.CheckpointError, match="3 trainable tensors"):
        ckpt.check_trainable(Path("c"), [torch.ones(1)] * 3, params)


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path):
    run = tmp_path / "run"
    for step in range(1, 7):
        _save(run, step)
    # a rewind to step 4 then saving step 5 again with keep_checkpoints = 1
    final = _save(run, 5, keep_last=1)
    names = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert final.name in names and "step_000004" not in names
    assert ckpt.find_checkpoint(run) == final
    # keep 2: this one and the newest older one
    final = _save(run, 7, keep_last=2)
    names = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert names == ["step_000006", "step_000007"]


def test_latest_must_name_a_direct_child(tmp_path):
    run = tmp_path / "run"
    _save(run, 1)
    other = tmp_path / "other"
    _save(other, 9)
    (run / "checkpoints" / "latest").write_text("../../other/checkpoints/step_000009\n")
    with pytest.raises(ckpt.CheckpointError, match="not a step_NNNNNN directory"):
        ckpt.find_checkpoint(run)


def test_missing_or_dangling_latest_falls_back_to_newest_complete_step(tmp_path):
    run = tmp_path / "run"
    for step in (2, 10):
        _save(run, step)
    (run / "checkpoints" / "latest").unlink()
    assert ckpt.find_checkpoint(run).name == "step_000010"
    (run / "checkpoints" / "latest").write_text("step_000042\n")  # dangling
    assert ckpt.find_checkpoint(run).name == "step_000010"
    # an uncommitted temporary is never taken
    (run / "checkpoints" / ".tmp-step_000011").mkdir()
    (run / "checkpoints" / ".tmp-step_000011" / "trainer_state.pt").write_bytes(b"")
    assert ckpt.find_checkpoint(run).name == "step_000010"


def test_stale_temporaries_are_cleaned_and_a_half_replaced_step_restored(tmp_path):
    run = tmp_path / "run"
    _save(run, 1)
    root = run / "checkpoints"
    (root / ".tmp-step_000002").mkdir()
    (root / ".latest.tmp-123").write_text("step_000002\n")
    # killed between the two renames of a re-save of step 1: only .old-step_000001 is left
    os.replace(root / "step_000001", root / ".old-step_000001")
    done = ckpt.clean_stale(run)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000001"]
    assert "restored step_000001" in done
    state, _ = ckpt.read_state(root / "step_000001")
    assert state.step == 1


def test_commit_writes_checksums_of_every_file(tmp_path):
    final = _save(tmp_path / "run", 1)
    sums = json.loads((final / ckpt.CHECKSUMS).read_text())
    assert set(sums) == {"trainable.pt", "trainer_state.pt", "config.toml", "adapter/weights.bin"}
