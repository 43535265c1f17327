"""Worker of tests/test_backend_equivalence.py (not a test module): one rank of a 2-process run.

``python tests/backend_equivalence_worker.py STEPS CONFIG...`` under ``torchrun``: for each
config in turn (same process group), builds the real Trainer, trains ``STEPS`` steps into
``dirname(CONFIG)/run`` and saves the full (gathered) LoRA tensors to ``dirname(CONFIG)/final.pt``
(rank 0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import deepspeed
import torch

from worldr1_core.config import load_config
from worldr1_core.trainer import Trainer


def main() -> None:
    steps, configs = int(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")  # one group for every backend below
    for path in configs:
        trainer = Trainer(load_config(path), run_dir=path.parent / "run")
        trainer.train(max_steps=steps)
        with trainer.dist.gathered():  # collective under ZeRO-3
            final = [p.detach().float().cpu().clone() for p in trainer.params]
        if trainer.dist.is_main:
            torch.save(final, path.parent / "final.pt")
            (path.parent / "backend.txt").write_text(trainer.dist.describe())
        trainer.dist.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
