"""``wan2.1`` LoRA under DeepSpeed ZeRO-3 on CPU (2 processes, gloo): adapter save gathers the
partitioned LoRA weights on all ranks and rank 0 writes them; load scatters them back.

The test launches this file with ``torch.distributed.run``; ``main()`` is the worker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers.launch import run_launch, torchrun


@pytest.mark.slow
def test_zero3_adapter_save_and_load_two_ranks(tmp_path):
    pytest.importorskip("deepspeed")
    from worldr1_plugins.base_models.wan2_1 import ensure_tiny_checkpoint

    ckpt = ensure_tiny_checkpoint(tmp_path / "cache")
    run_launch(torchrun(__file__, str(ckpt), str(tmp_path)), timeout=600)
    report = json.loads((tmp_path / "report.json").read_text())
    # every rank gathered the same full LoRA weights, and they moved away from the initial ones
    assert report["checksums_equal_across_ranks"]
    assert report["saved_equals_gathered"]
    assert report["trained_differs_from_initial"]
    assert report["reload_restores_initial"]
    assert report["fresh_model_reproduces_trained_output"]


def main(ckpt: str, out: str) -> None:
    import deepspeed
    import torch
    import torch.distributed as dist
    from safetensors.torch import load_file

    from worldr1_plugins.base_models.lora import gathered
    from worldr1_plugins.base_models.wan2_1 import Wan21

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    rank = dist.get_rank()
    out = Path(out)
    lora = {"init": False, "rank": 4, "alpha": 8}
    model = Wan21(Wan21.Config(path=ckpt, device="cpu", dtype="fp32", lora=lora))
    model.save_adapter(out / "initial")  # plain (unpartitioned) save: rank 0 writes
    dist.barrier()

    params = model.trainable_parameters()
    engine, _, _, _ = deepspeed.initialize(
        model=model.trainable_module(),
        optimizer=torch.optim.AdamW(params, lr=1e-2),
        config={
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": 3},
            "steps_per_print": 10**9,
        },
    )
    assert all(hasattr(p, "ds_id") for p in params), "LoRA params should be ZeRO-3 partitioned"

    cond = model.encode_prompts([f"prompt of rank {rank}"])
    layout = model.latent_layout(5, 16, 16)
    g = torch.Generator().manual_seed(rank)
    for _ in range(2):
        x = torch.randn(1, *layout.shape, generator=g)
        target = torch.randn(1, *layout.shape, generator=g)
        loss = torch.nn.functional.mse_loss(
            model.velocity(x, 0.5, cond, guidance_scale=2.0), target
        )
        engine.backward(loss)
        engine.step()

    model.save_adapter(out / "trained")  # collective gather on both ranks, rank 0 writes
    dist.barrier()
    with gathered(params):
        full = [p.detach().clone() for p in params]
    checksum = torch.tensor([float(sum(t.double().sum() for t in full))])
    sums = [torch.zeros(1) for _ in range(dist.get_world_size())]
    dist.all_gather(sums, checksum)

    probe = torch.randn(1, *layout.shape, generator=torch.Generator().manual_seed(7))
    probe_cond = model.encode_prompts(["probe"])
    with torch.no_grad():
        trained_out = model.velocity(probe, 0.5, probe_cond)

    model.load_adapter(out / "initial")  # collective scatter back into the partitions
    with gathered(params):
        reloaded = [p.detach().clone() for p in params]

    if rank == 0:
        saved = load_file(str(out / "trained" / "pytorch_lora_weights.safetensors"))
        initial = load_file(str(out / "initial" / "pytorch_lora_weights.safetensors"))
        names = [n for n, p in model.transformer.named_parameters() if p.requires_grad]
        key = lambda n: "transformer." + n.replace(".default", "")  # noqa: E731
        fresh = Wan21(Wan21.Config(path=ckpt, device="cpu", dtype="fp32", lora=lora))
        fresh.load_adapter(out / "trained")
        with torch.no_grad():
            fresh_out = fresh.velocity(probe, 0.5, probe_cond)
        report = {
            "checksums_equal_across_ranks": all(torch.equal(s, sums[0]) for s in sums),
            "saved_equals_gathered": all(
                torch.equal(saved[key(n)], t) for n, t in zip(names, full)
            ),
            "trained_differs_from_initial": all(
                not torch.equal(saved[key(n)], initial[key(n)]) for n in names
            ),
            "reload_restores_initial": all(
                torch.equal(initial[key(n)], t) for n, t in zip(names, reloaded)
            ),
            "fresh_model_reproduces_trained_output": bool(
                torch.allclose(fresh_out, trained_out, atol=1e-5)
            ),
        }
        (out / "report.json").write_text(json.dumps(report))
    dist.barrier()
    # without this, Gloo's threads are torn down during interpreter finalization, which aborts a
    # rank now and then ("terminate called without an active exception", exit -6)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
