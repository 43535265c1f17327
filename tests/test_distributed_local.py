"""Single-process behaviour of worldr1_core.distributed: accumulation, clipping, DeepSpeed config."""

from __future__ import annotations

import json

import pytest
import torch

from worldr1_core.distributed import Distributed


@pytest.fixture
def single(monkeypatch):
    for key in (
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "ACCELERATE_USE_DEEPSPEED",
        "CROSS_RANK",
        "LOCAL_SIZE",
        "ACCELERATE_DEEPSPEED_CONFIG_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_auto_backend_single_process_is_none(single):
    d = Distributed("auto")
    assert d.backend == "none" and d.world_size == 1 and d.is_main
    assert Distributed("ddp").backend == "none"  # nothing to synchronise with one process
    t = torch.arange(4.0)
    assert torch.equal(d.all_gather(t), t)


def test_accumulated_update_equals_mean_loss_update(single):
    torch.manual_seed(0)
    x = torch.randn(6, 3)
    w0 = torch.randn(3, 1)

    def run(chunks: int) -> torch.Tensor:
        w = torch.nn.Parameter(w0.clone())
        opt = torch.optim.SGD([w], lr=0.1)
        d = Distributed("none", grad_clip=0.0)
        d.prepare(torch.nn.Module(), [w], opt, accumulation_steps=chunks)
        for part in x.chunk(chunks):
            d.backward((part @ w).pow(2).mean())
        d.step()
        return w.detach()

    # K equal micro-batches accumulated == one backward on the mean of their losses
    torch.testing.assert_close(run(3), run(1))
    d = Distributed("none")
    d.prepare(
        torch.nn.Module(),
        [torch.nn.Parameter(torch.zeros(1))],
        torch.optim.SGD([torch.zeros(1)], lr=1),
        accumulation_steps=2,
    )
    with pytest.raises(RuntimeError, match="accumulation_steps=2"):
        d.step()


def test_grad_norm_reported_before_clipping(single):
    w = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=1.0)
    d = Distributed("none", grad_clip=1.0)
    d.prepare(torch.nn.Module(), [w], opt)
    d.backward((w * torch.tensor([3.0, 4.0, 0.0, 0.0])).sum())  # grad (3, 4, 0, 0), norm 5
    norm = d.step()
    assert norm == pytest.approx(5.0)
    torch.testing.assert_close(w.detach(), -torch.tensor([0.6, 0.8, 0.0, 0.0]))  # clipped to norm 1


def test_deepspeed_config_autos_are_filled(single, tmp_path):
    d = Distributed("none", zero_stage=3, grad_clip=0.5, mixed_precision="bf16")
    cfg = d.deepspeed_config(micro_batch=2, accumulation_steps=12)
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["train_micro_batch_size_per_gpu"] == 2 and isinstance(
        cfg["train_micro_batch_size_per_gpu"], int
    )
    assert cfg["gradient_accumulation_steps"] == 12 and cfg["gradient_clipping"] == 0.5
    assert (
        cfg["bf16"]["enabled"] is True and "optimizer" not in cfg and "train_batch_size" not in cfg
    )
    assert (
        Distributed("none", zero_stage=2).deepspeed_config(1, 1)["zero_optimization"]["stage"] == 2
    )
    own = tmp_path / "ds.json"
    own.write_text(
        json.dumps(
            {
                "zero_optimization": {"stage": 1},
                "gradient_clipping": 2.0,
                "optimizer": {"type": "Adam"},
            }
        )
    )
    cfg = Distributed("none", deepspeed_config=str(own)).deepspeed_config(1, 1)
    assert (
        cfg["zero_optimization"]["stage"] == 1
        and cfg["gradient_clipping"] == 2.0
        and "optimizer" not in cfg
    )
    with pytest.raises(FileNotFoundError, match="deepspeed_config"):
        Distributed("none", deepspeed_config=str(tmp_path / "missing.json")).deepspeed_config(1, 1)


def test_launcher_env_selects_backend(single):
    single.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    single.setenv("WORLD_SIZE", "2")
    assert Distributed.resolve_backend("auto", "") == "deepspeed"
    single.delenv("ACCELERATE_USE_DEEPSPEED")
    assert Distributed.resolve_backend("auto", "") == "ddp"
    single.setenv("CROSS_RANK", "0")
    single.setenv("LOCAL_SIZE", "2")
    assert Distributed.resolve_backend("auto", "") == "deepspeed"


def test_mixed_precision_is_deepspeed_only_and_says_so(single, tmp_path):
    """train.mixed_precision only configures DeepSpeed; on another backend it is a config error
    (naming the key and the file) raised before any model loads, not a silently ignored key."""
    from worldr1_core.config import load_config
    from worldr1_core.errors import ConfigError

    cfg = tmp_path / "run.toml"
    cfg.write_text('[train]\nmixed_precision = "bf16"\n', encoding="utf-8")
    config = load_config(cfg)
    with pytest.raises(
        ConfigError, match="train.mixed_precision = 'bf16' is DeepSpeed-only"
    ) as info:
        Distributed.from_config(config)
    assert str(cfg) in str(info.value) and "'none'" in str(info.value)
    single.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # launched by accelerate with DeepSpeed
    assert Distributed.resolve_backend(config.distributed.backend, "") == "deepspeed"
    cfg.write_text('[train]\nmixed_precision = "no"\n', encoding="utf-8")
    single.delenv("ACCELERATE_USE_DEEPSPEED")
    assert Distributed.from_config(load_config(cfg)).backend == "none"
