"""The release's deterministic sampler (``rl.sampler = "release"``) against golden figures of the
World-R1 release (tests/fixtures/release/sampler.json, commit cf54603), and the importance ratio
at the first update in both sampler modes (with per-step injection)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

from tests.test_flow_grpo import LinearVideoModel
from worldr1_core.interfaces import VideoModel
from worldr1_plugins.latent_init.stepwise_delta import box_lowpass, stepwise_delta_hook
from worldr1_plugins.rl_algos.flow_grpo import FlowGRPO
from worldr1_plugins.rl_algos.stepping import WAN_UNIPC, FlowScheduler

torch.set_num_threads(2)
GOLDEN = json.loads((Path(__file__).parent / "fixtures/release/sampler.json").read_text())


class ToyFlowModel(VideoModel):
    """The golden file's closed-form velocity ``s (tanh(x) (0.5 + sigma) - x0)`` (``s = 1``; the
    reference policy ``s = 0.9``), with the Wan UniPC scheduler config (flow_shift 3)."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0, self.scale = x0, 1.0

    device = property(lambda self: torch.device("cpu"))
    dtype = property(lambda self: torch.float32)

    def latent_layout(self, frames, height, width):
        raise NotImplementedError

    def encode_prompts(self, prompts, negative_prompt=None):
        return None

    def sigmas(self, num_steps):
        return torch.linspace(1.0, 0.0, num_steps + 1)

    def scheduler_config(self):
        return {"_class_name": "UniPCMultistepScheduler", **WAN_UNIPC, "flow_shift": 3.0}

    def velocity(self, latents, sigma, cond, guidance_scale=1.0):
        s = torch.as_tensor(sigma, dtype=latents.dtype).reshape(-1)
        s = s.reshape(-1, *([1] * (latents.ndim - 1)))
        return self.scale * (torch.tanh(latents) * (0.5 + s) - self.x0)

    def decode(self, latents):
        raise NotImplementedError

    def trainable_parameters(self):
        return []

    def trainable_module(self):
        return torch.nn.Module()

    @contextlib.contextmanager
    def reference(self):
        self.scale = 0.9
        try:
            yield
        finally:
            self.scale = 1.0

    def save_adapter(self, directory):
        raise NotImplementedError

    def load_adapter(self, directory):
        raise NotImplementedError


def _t(key):
    return torch.tensor(GOLDEN[key], dtype=torch.float32)


@pytest.fixture(scope="module")
def golden_run():
    model = ToyFlowModel(_t("x0"))
    hook = stepwise_delta_hook(box_lowpass(_t("delta"), 3), 0.35, 8)
    algo = FlowGRPO(
        FlowGRPO.Config(
            sampler="release", num_steps=50, guidance_scale=1.0, kl_beta=1.0, group_size=2
        )
    )
    rollout = algo.rollout(model, _t("x_init"), None, torch.Generator(), step_hook=hook)
    return model, algo, rollout


def test_scheduler_sigmas_and_model_timesteps_are_the_releases():
    sched = FlowScheduler("model", ToyFlowModel(_t("x0")).scheduler_config(), 50)
    assert torch.allclose(
        sched.sigmas, torch.tensor(GOLDEN["sigmas"], dtype=torch.float64), atol=1e-8
    )
    assert (sched.model_sigmas * 1000).round().long().tolist() == GOLDEN["timesteps"]


def test_release_rollout_matches_golden_states_and_log_probs(golden_run):
    """Every stored state (UniPC step + injected delta) and every log-prob equals the release's
    (float32 arithmetic on both sides: tolerance 2e-5 on latents, 2e-4 on log-probs)."""
    _, _, rollout = golden_run
    for rec in GOLDEN["steps"]:
        s = rec["step"]
        nxt = rollout.latents[:, s + 1].reshape(-1)[:8]
        assert torch.allclose(nxt, torch.tensor(rec["next_first8"]), atol=2e-5), s
        assert torch.allclose(rollout.log_probs[:, s], torch.tensor(rec["log_prob"]), atol=2e-4), s
        rms = float(rollout.latents[:, s + 1].double().pow(2).mean().sqrt())
        assert rms == pytest.approx(rec["next_rms"], rel=1e-5)
    assert torch.allclose(rollout.final, _t("final"), atol=5e-5)


def test_offset_from_euler_mean_in_std_units_matches_release(golden_run):
    """How far the stored state lies from the Euler mean (the only source of gradient): ~1 std at
    step 0 (injection), ~0.087 at step 8 (UniPC vs Euler), ~0 late."""
    model, _, rollout = golden_run
    sched = FlowScheduler("model", model.scheduler_config(), 50)
    smax, smin = sched.sigma_max, sched.sigma_min
    for rec in GOLDEN["steps"]:
        s = rec["step"]
        x, nxt = rollout.latents[:, s], rollout.latents[:, s + 1]
        v = model.velocity(x, sched.model_sigmas[s].float(), None)
        sig, sig_n = float(sched.sigmas[s]), float(sched.sigmas[s + 1])
        mean = x + (sig_n - sig) * v
        std = (smin + (smax - smin) * sig) * (sig - sig_n) ** 0.5
        z = float(((nxt - mean) / std).double().pow(2).mean().sqrt())
        assert z == pytest.approx(rec["offset_rms_in_std"], abs=2e-3), s
    assert GOLDEN["steps"][0]["offset_rms_in_std"] > 0.9
    assert GOLDEN["steps"][8]["offset_rms_in_std"] == pytest.approx(0.087, abs=0.002)


@pytest.mark.parametrize("step", [0, 5, 8, 30, 49])
def test_update_log_prob_and_kl_match_release_training(golden_run, step):
    """``loss`` recomputes the release's training log-prob (ratio 1) and its KL term."""
    model, algo, rollout = golden_run
    rec = GOLDEN["steps"][step]
    adv = torch.zeros(2)
    _, metrics = algo.loss(model, rollout, adv, step)
    assert metrics["ratio_min"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["ratio_max"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["kl"] == pytest.approx(rec["kl"], rel=1e-3)
    assert rec["log_prob_train"] == pytest.approx(rec["log_prob"], abs=1e-6)


# ---------------------------------------------------------------------- ratio 1 in both modes


def _hooks(kind: str):
    if kind == "none":
        return None
    if kind == "pull":  # the noise_warp inject_steps kind: pull toward a fixed target

        def hook(step, x, sigma_next):
            return x if step >= 3 else x + 0.3 * sigma_next * (torch.ones_like(x) - x)

        return hook
    delta = torch.randn(4, 4, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    return stepwise_delta_hook(box_lowpass(delta, 3), 0.45, 4)


@pytest.mark.parametrize("hook_kind", ["none", "pull", "stepwise"])
@pytest.mark.parametrize(
    "sampler,scheduler", [("sde", "model"), ("release", "unipc"), ("release", "euler")]
)
def test_importance_ratio_is_one_at_first_update(sampler, scheduler, hook_kind):
    """The stored transitions are exactly those the update scores: before any optimizer step the
    ratio is 1 at every trained step, also at the injected ones (the old SDE path scored the
    un-injected latent there)."""
    model = LinearVideoModel(channels=4, seed=1)
    with torch.no_grad():
        model.adapter.add_(0.05 * torch.randn(4, 4, generator=torch.Generator().manual_seed(2)))
    algo = FlowGRPO(
        FlowGRPO.Config(
            sampler=sampler, scheduler=scheduler, num_steps=8, guidance_scale=1.0, group_size=2
        )
    )
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 4, 3, 6, 6, generator=g)
    cond = model.encode_prompts(["a", "bb", "a", "bb"])
    rollout = algo.rollout(model, x1, cond, g, step_hook=_hooks(hook_kind))
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    for s in rollout.train_steps:
        _, m = algo.loss(model, rollout, adv, s)
        assert m["ratio_min"] == pytest.approx(1.0, abs=1e-5), s
        assert m["ratio_max"] == pytest.approx(1.0, abs=1e-5), s


def test_release_rollout_is_deterministic_so_group_diversity_is_the_initial_noise():
    model = LinearVideoModel(channels=4, seed=1)
    algo = FlowGRPO(FlowGRPO.Config(sampler="release", scheduler="unipc", num_steps=6))
    x = torch.randn(1, 4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    cond = model.encode_prompts(["a", "a"])
    same = algo.rollout(model, x.repeat(2, 1, 1, 1, 1), cond, torch.Generator().manual_seed(1))
    assert torch.equal(same.final[0], same.final[1])
    other = algo.rollout(model, x.repeat(2, 1, 1, 1, 1), cond, torch.Generator().manual_seed(9))
    assert torch.equal(same.final, other.final)  # the generator plays no part


def test_release_mode_gradient_vanishes_where_the_state_is_the_euler_mean():
    """Stepped with Euler and no injection every stored state is the Euler mean: zero gradient.
    Stepped with UniPC the corrector moves it off the mean: a non-zero gradient."""
    grads = {}
    for scheduler in ("euler", "unipc"):
        model = LinearVideoModel(channels=4, seed=1)
        algo = FlowGRPO(
            FlowGRPO.Config(sampler="release", scheduler=scheduler, num_steps=6, kl_beta=0.0)
        )
        x = torch.randn(2, 4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
        cond = model.encode_prompts(["a", "bb"])
        rollout = algo.rollout(model, x, cond, torch.Generator())
        loss, _ = algo.loss(model, rollout, torch.tensor([1.0, -1.0]), 3)
        loss.backward()
        grads[scheduler] = float(model.adapter.grad.abs().max())
    assert grads["euler"] < 1e-9
    assert grads["unipc"] > 1e-6


def test_release_mode_trains_the_releases_step_count():
    """``int(num_steps * timestep_fraction)``: 0.49 of 50 -> 24 (the SDE mode rounds up)."""
    algo = FlowGRPO(FlowGRPO.Config(sampler="release", num_steps=50, train_fraction=0.49))
    assert algo.num_train_steps() == 24
    assert algo.select_train_steps() == list(range(24))


def test_unipc_undoes_the_injected_delta_where_euler_keeps_it():
    """Warp ablation on the golden toy model: the RMS difference between rollouts with and without
    the release's stepwise delta. UniPC's corrector rebuilds each state from the model's
    predictions, so the delta is mostly gone right after the guidance steps (measured: 0.0011 at
    state 9 vs 0.079 at state 1); Euler keeps it (0.32 at state 9, 0.18 at the end)."""
    from worldr1_plugins.rl_algos.stepping import scheduled_rollout

    model = ToyFlowModel(_t("x0"))
    effect = {}
    for kind in ("unipc", "euler"):
        runs = []
        for hook in (None, stepwise_delta_hook(box_lowpass(_t("delta"), 3), 0.35, 8)):
            sched = FlowScheduler(kind, model.scheduler_config(), 50)
            runs.append(scheduled_rollout(model, _t("x_init"), None, 1.0, sched, step_hook=hook)[0])
        d = runs[1] - runs[0]
        effect[kind] = [float(d[:, s].pow(2).mean().sqrt()) for s in (1, 9, 50)]
    assert effect["unipc"][0] == pytest.approx(effect["euler"][0], rel=1e-3)  # same first delta
    assert effect["unipc"][1] < 0.05 * effect["euler"][1]
    assert effect["unipc"][2] < 0.01 and effect["euler"][2] > 0.1
