"""DiffusionNFT (plugins/rl_algos/diffusion_nft.py): its loss against a hand computation, its old
policy, its black-box samplers (the release's scheduler-stepped rollout), and the config switch."""

from __future__ import annotations

import math

import torch

from tests.helpers.toy_models import SwitchableReference
from worldr1_core.registry import get_registry
from worldr1_core.testing import run_config
from worldr1_core.trainer import Trainer
from worldr1_core.types import Rollout
from worldr1_plugins.rl_algos.diffusion_nft import DiffusionNFT, nft_weights
from worldr1_plugins.rl_algos.flow_grpo import FlowGRPO

torch.set_num_threads(2)


class ScaledIdentity(SwitchableReference):
    """A one-parameter velocity field ``v(x) = w x`` (reference: ``w_ref x``): small enough to
    write the loss out by hand."""

    def __init__(self, w: float, w_ref: float):
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.w_ref = w_ref

    def trainable_parameters(self):
        return [self.w]

    def velocity(self, x, sigma, cond, guidance_scale=1.0):
        assert guidance_scale == 1.0  # the update is CFG-free
        return (self.w_ref if self._ref else self.w) * x


def test_loss_equals_a_hand_computation():
    beta, clip, kl_beta = 0.5, 2.0, 0.1
    algo = DiffusionNFT(DiffusionNFT.Config(beta=beta, adv_clip=clip, kl_beta=kl_beta, num_steps=2))
    x0_vals = [[0.5, -1.0], [2.0, 0.25]]  # 2 samples of 2 latent elements
    x0 = torch.tensor(x0_vals).reshape(2, 1, 1, 1, 2)
    rollout = Rollout(
        latents=torch.stack([torch.zeros_like(x0), x0], dim=1),
        log_probs=None,
        sigmas=torch.tensor([1.0, 0.5]),
        train_steps=[0],
        per_sample={"t": torch.tensor([[0.3], [0.8]]), "seed": torch.tensor([11, 12])},
        extras={"token": "step-0"},
    )
    adv = torch.tensor([1.0, -3.0])  # r = 0.75 and (clipped to -2) 0.0
    model = ScaledIdentity(w=0.8, w_ref=0.5)
    algo.loss(model, rollout, adv, 0)  # the step's first call: old policy = w 0.8
    with torch.no_grad():
        model.w.fill_(1.0)  # an optimizer update inside the step
    loss, metrics = algo.loss(model, rollout, adv, 0)

    eps = DiffusionNFT.noise(rollout, 0, x0).reshape(2, 2).tolist()
    expected_policy, kl_terms = 0.0, []
    for i, (t, r) in enumerate([(0.3, 0.75), (0.8, 0.0)]):
        x_t = [(1 - t) * a + t * e for a, e in zip(x0_vals[i], eps[i])]
        v, v_old, v_ref = [1.0 * x for x in x_t], [0.8 * x for x in x_t], [0.5 * x for x in x_t]
        v_pos = [beta * a + (1 - beta) * b for a, b in zip(v, v_old)]
        v_neg = [(1 + beta) * b - beta * a for a, b in zip(v, v_old)]

        def adaptive(vp, x_t=x_t, i=i, t=t):
            err = [xt - t * u - a for xt, u, a in zip(x_t, vp, x0_vals[i])]
            return (sum(e * e for e in err) / 2) / (sum(abs(e) for e in err) / 2)

        expected_policy += (r * adaptive(v_pos) + (1 - r) * adaptive(v_neg)) / beta / 2
        kl_terms += [(a - b) ** 2 for a, b in zip(v, v_ref)]
    expected = clip * expected_policy + kl_beta * sum(kl_terms) / len(kl_terms)
    got = float(loss.detach())
    assert math.isclose(got, expected, rel_tol=1e-5), (got, expected)
    assert math.isclose(metrics["policy_loss"], clip * expected_policy, rel_tol=1e-5)

    loss.backward()  # differentiable in the trained weight only (v_old, v_ref are constants)
    assert model.w.grad is not None and torch.isfinite(model.w.grad) and model.w.grad != 0


def test_weights_and_old_policy():
    assert nft_weights(torch.tensor([-9.0, -5.0, 0.0, 2.5, 9.0]), 5.0).tolist() == [
        0.0,
        0.0,
        0.5,
        0.75,
        1.0,
    ]
    # while the weights equal the old ones, v_old is v itself (no extra forward)
    algo = DiffusionNFT(DiffusionNFT.Config(kl_beta=0.0))
    model = ScaledIdentity(w=1.0, w_ref=0.0)
    x0 = torch.ones(1, 1, 1, 1, 3)
    rollout = Rollout(
        latents=torch.stack([x0, x0], dim=1),
        log_probs=None,
        sigmas=torch.tensor([0.5]),
        train_steps=[0],
        per_sample={"t": torch.tensor([[0.5]]), "seed": torch.tensor([3])},
        extras={"token": 1},
    )
    _, m = algo.loss(model, rollout, torch.tensor([1.0]), 0)
    assert m["old_deviate"] == 0.0
    with torch.no_grad():
        model.w.fill_(2.0)
    _, m = algo.loss(model, rollout, torch.tensor([1.0]), 0)  # same step: old stays at w = 1
    assert m["old_deviate"] > 0
    rollout.extras = {"token": 2}  # next step: old = the weights that sampled it
    _, m = algo.loss(model, rollout, torch.tensor([1.0]), 0)
    assert m["old_deviate"] == 0.0


def _sections(rl: dict) -> dict:
    return {
        "run": {"seed": 1, "progress_bar": False, "save_every": 0, "sample_every": 0},
        "video": {"frames": 5, "height": 16, "width": 16},
        "model": {"name": "wan2.1", "preset": "tiny", "lora": {"rank": 4, "alpha": 8.0}},
        "train": {"prompts_per_step": 1, "lr": 1e-3},
        "prompts": {"train": {"prompts": ["a red car", "a house in the snow"]}},
        "rl": rl,
        "rewards": [{"name": "brightness", "weight": 1.0}],
    }


def test_release_sampler_is_flow_grpo_release_rollout_and_config_switches(tmp_path, fresh_plugins):
    """``rl.name = "diffusion_nft"`` switches the algorithm; with ``sampler = "release"`` its clean
    samples are exactly Flow-GRPO's release-mode rollouts (the same black-box sampler)."""
    rl = {"name": "diffusion_nft", "group_size": 2, "num_steps": 3, "sampler": "release"}
    trainer = Trainer(run_config(tmp_path, _sections(rl)), run_dir=tmp_path / "run")
    assert isinstance(trainer.algo, DiffusionNFT)
    assert "diffusion_nft" in get_registry().names("rl_algorithm")
    model = trainer.model
    x1 = torch.randn(2, *trainer.layout.shape, generator=torch.Generator().manual_seed(0))
    cond = model.encode_prompts(["a red car"] * 2)
    nft = trainer.algo.rollout(model, x1, cond, torch.Generator().manual_seed(1))
    grpo = FlowGRPO(
        FlowGRPO.Config(sampler="release", num_steps=3, guidance_scale=1.0, group_size=2)
    ).rollout(model, x1, cond, torch.Generator().manual_seed(1))
    assert torch.equal(nft.final, grpo.final)
    assert nft.log_probs is None and nft.per_sample["t"].shape == (2, 2)
    # every trained level is one the sampler evaluated the model at
    assert set(nft.per_sample["t"].flatten().tolist()) <= set(nft.sigmas.tolist())
    metrics = trainer.train(max_steps=1)
    assert metrics["train/updates"] == 1 and math.isfinite(metrics["train/policy_loss"])
    assert "train/ratio_mean" not in metrics
