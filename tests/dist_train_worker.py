"""Worker of tests/test_distributed_zero3.py (not a test module): one rank of a multi-process run.

``python tests/dist_train_worker.py CONFIG OUT_DIR STEPS`` under ``accelerate launch`` / ``torchrun``:
builds the real Trainer, saves this rank's full (gathered) LoRA tensors before and after
``STEPS`` training steps to ``OUT_DIR/rank{R}_{init,final}.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from worldr1_core.config import load_config
from worldr1_core.trainer import Trainer


def snapshot(trainer: Trainer) -> list[torch.Tensor]:
    with trainer.dist.gathered():  # collective under ZeRO-3
        return [p.detach().float().cpu().clone() for p in trainer.params]


def main() -> None:
    config_path, out_dir, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    trainer = Trainer(load_config(config_path), run_dir=out_dir / "run")
    rank = trainer.dist.rank
    torch.save(snapshot(trainer), out_dir / f"rank{rank}_init.pt")
    trainer.train(max_steps=steps)
    torch.save(snapshot(trainer), out_dir / f"rank{rank}_final.pt")
    (out_dir / f"rank{rank}_info.txt").write_text(trainer.dist.describe())
    trainer.dist.close()


if __name__ == "__main__":
    main()
