"""The `cogvideox` base model (DDIM v-prediction) and its DDIM transition in flow_grpo.

* the base-model contract suite on the tiny preset (patch_size_t = 2, odd latent frame count);
* deterministic sampling through the interface reproduces CogVideoXPipeline's own DDIM loop;
* the DDIM kernel against its closed form from the scheduler's alphas_cumprod (mean = diffusers'
  deterministic step at eta = 0; log-prob = the release's Gaussian density up to the Jacobian);
* rollout + loss: the model's declared family picks the kernel; ratio == 1 at the first update;
* LoRA saved by the plugin loads with CogVideoXPipeline.load_lora_weights;
* configs/world_r1_cogvideox_5b.toml: release numbers, and 2 CPU training steps from the CLI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.helpers.base_models import load_tiny, tiny_checkpoint_fixture
from worldr1_core.testing.base_model_contract import NEGATIVE, PROMPTS, BaseModelContract
from worldr1_plugins.base_models.cogvideox import CogVideoX, ensure_tiny_checkpoint, vp_to_sigma
from worldr1_plugins.rl_algos.ddim import ddim_step_with_logprob, release_log_prob
from worldr1_plugins.rl_algos.flow_grpo import FlowGRPO, sde_step_with_logprob

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]


tiny_dir = tiny_checkpoint_fixture(ensure_tiny_checkpoint, "cogvideox")


def make_model(path, **lora) -> CogVideoX:
    return load_tiny(CogVideoX, path, lora={"rank": 4, **lora})


class TestCogVideoXContract(BaseModelContract):
    frames, height, width = 9, 32, 48  # 3 latent frames: exercises the patch_size_t = 2 padding

    @pytest.fixture
    def model_factory(self, tiny_dir):
        return lambda: make_model(tiny_dir)


def test_declares_ddim_and_sigmas_are_the_scheduler_timesteps(tiny_dir):
    model = make_model(tiny_dir)
    assert model.sampler_family == "ddim"
    sigmas = model.sigmas(4)
    # trailing spacing: 999, 749, 499, 249, then the data (alpha_bar = 1)
    assert model.timesteps_for(sigmas[:-1]).tolist() == [999, 749, 499, 249]
    a = model.scheduler.alphas_cumprod[[999, 749, 499, 249]].double()
    expected = (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())
    torch.testing.assert_close(sigmas[:-1].double(), expected, rtol=0, atol=1e-6)
    assert float(sigmas[0]) == 1.0 and float(sigmas[-1]) == 0.0


def test_euler_sampling_reproduces_the_cogvideox_pipeline(tiny_dir):
    """Deterministic DDIM is the Euler step in sigma: the interface's sampler with this plugin gives
    CogVideoXPipeline's latents (same noise, prompts, guidance 6, 4 DDIM steps)."""
    from diffusers import CogVideoXPipeline

    from worldr1_core.generation import euler_sample

    model = make_model(tiny_dir)
    pipe = CogVideoXPipeline.from_pretrained(str(tiny_dir))
    pipe.set_progress_bar_config(disable=True)
    layout = model.latent_layout(5, 32, 32)  # 2 latent frames: no padding in the pipeline either
    init = torch.randn(2, *layout.shape, generator=torch.Generator().manual_seed(0))
    prompts = ["a red car on a road", "a wooden cabin in snow"]
    with torch.no_grad(), model.reference():
        ours = euler_sample(model, init, model.encode_prompts(prompts, ""), model.sigmas(4), 6.0)
        theirs = pipe(
            prompt=prompts,
            negative_prompt="",
            height=32,
            width=32,
            num_frames=5,
            num_inference_steps=4,
            guidance_scale=6.0,
            latents=init.permute(0, 2, 1, 3, 4),
            output_type="latent",
        ).frames.permute(0, 2, 1, 3, 4)
    assert float((ours - init).abs().mean()) > 0.1  # the sampler moved the latents
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def _closed_form(scheduler, t: int, t_prev: int, v_pred, x_t, eta):
    """The release's stochastic DDIM step on the VP state, written from alphas_cumprod."""
    ac = scheduler.alphas_cumprod.double()
    a = ac[t]
    a_prev = ac[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = a.sqrt() * x_t - (1 - a).sqrt() * v_pred
    eps = a.sqrt() * v_pred + (1 - a).sqrt() * x_t
    var = (1 - a_prev) / (1 - a) * (1 - a / a_prev)
    std = eta * var.sqrt()
    mean = a_prev.sqrt() * x0 + (1 - a_prev - std**2).clamp_min(0).sqrt() * eps
    return mean, std


@pytest.mark.parametrize("step", [0, 2, 3])
def test_ddim_kernel_matches_the_closed_form(tiny_dir, step):
    from diffusers import CogVideoXDDIMScheduler

    model = make_model(tiny_dir)
    ts = [999, 749, 499, 249, -1]
    scheduler = CogVideoXDDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(4)
    assert scheduler.timesteps.tolist() == ts[:-1]
    ac = scheduler.alphas_cumprod.double()
    sigmas = torch.cat([vp_to_sigma(ac[ts[:-1]]), torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(model.sigmas(4).double(), sigmas, rtol=0, atol=1e-6)
    g = torch.Generator().manual_seed(step)
    x_t = torch.randn(2, 4, 3, 4, 4, generator=g, dtype=torch.float64)
    v_pred = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    s, s_next = sigmas[step], sigmas[step + 1]
    n, n_next = ((1 - s) ** 2 + s**2).sqrt(), ((1 - s_next) ** 2 + s_next**2).sqrt()
    a = 1 / (1 + (s / (1 - s)) ** 2) if s < 1 else torch.tensor(0.0, dtype=torch.float64)
    velocity = (a.sqrt() + (1 - a).sqrt()) * v_pred + ((1 - a).sqrt() - a.sqrt()) * x_t
    y = n * x_t
    eta = 0.7
    mean_vp, std_vp = _closed_form(scheduler, ts[step], ts[step + 1], v_pred, x_t, eta)
    prev = mean_vp + std_vp * torch.randn(x_t.shape, generator=g, dtype=torch.float64)

    y_next, log_prob, mean, std = ddim_step_with_logprob(
        velocity, s, s_next, y, eta, prev_sample=n_next * prev
    )
    torch.testing.assert_close(mean, n_next * mean_vp, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(std.flatten()[0], n_next * std_vp, rtol=1e-9, atol=1e-12)
    if step == 3:  # last step: onto the data, deterministic, no likelihood (as the release)
        assert float(std_vp) == 0.0 and torch.equal(log_prob, torch.zeros(2, dtype=log_prob.dtype))
    else:
        gauss = (
            -((prev - mean_vp) ** 2) / (2 * std_vp**2)
            - torch.log(std_vp)
            - 0.5 * math.log(2 * math.pi)
        ).mean(dim=(1, 2, 3, 4))
        torch.testing.assert_close(
            release_log_prob(log_prob, s_next, eta), gauss, rtol=0, atol=1e-9
        )

    # eta = 0: deterministic DDIM, i.e. diffusers' CogVideoXDDIMScheduler.step and the Euler step
    y0, lp0, _, _ = ddim_step_with_logprob(velocity, s, s_next, y, 0.0)
    ref = scheduler.step(v_pred.float(), ts[step], x_t.float()).prev_sample.double()
    torch.testing.assert_close(y0 / n_next, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y0, y + (s_next - s) * velocity, rtol=1e-9, atol=1e-9)
    assert torch.equal(lp0, torch.zeros_like(lp0))


def test_ddim_kernel_samples_its_stated_gaussian():
    """10^5 draws: the sampled steps have the returned mean and std, and the mean log-prob equals
    the Gaussian's negative entropy (-1/2 - log std - log sqrt(2 pi))."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 100_000, dtype=torch.float64, generator=g)
    v = torch.randn(y.shape, dtype=torch.float64, generator=g)
    out, log_prob, mean, std = ddim_step_with_logprob(v, 0.8, 0.6, y, 1.0, generator=g)
    z = (out - mean) / std
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    expected = -0.5 - math.log(float(std.flatten()[0])) - 0.5 * math.log(2 * math.pi)
    assert float(log_prob) == pytest.approx(expected, abs=0.01)


def test_rollout_uses_the_ddim_kernel_and_ratio_is_one_at_the_first_update(tiny_dir):
    model = make_model(tiny_dir)
    algo = FlowGRPO(FlowGRPO.Config(group_size=2, num_steps=4, guidance_scale=6.0, kl_beta=0.01))
    layout = model.latent_layout(9, 32, 32)
    cond = model.encode_prompts(PROMPTS, NEGATIVE)
    init = torch.randn(2, *layout.shape, generator=torch.Generator().manual_seed(1))
    rollout = algo.rollout(model, init, cond, torch.Generator().manual_seed(2))
    sig = rollout.sigmas
    for s in range(3):  # the recorded log-probs are the DDIM kernel's, not the flow SDE's
        with torch.no_grad():
            v = model.velocity(rollout.latents[:, s], sig[s], cond, 6.0)
        args = (v, float(sig[s]), float(sig[s + 1]), rollout.latents[:, s], 0.7)
        _, lp_ddim, _, _ = ddim_step_with_logprob(*args, prev_sample=rollout.latents[:, s + 1])
        _, lp_sde, _, _ = sde_step_with_logprob(*args, prev_sample=rollout.latents[:, s + 1])
        torch.testing.assert_close(rollout.log_probs[:, s], lp_ddim, rtol=0, atol=1e-5)
        assert (rollout.log_probs[:, s] - lp_sde).abs().min() > 1e-3  # vs the 1e-5 match above
    assert torch.equal(
        rollout.log_probs[:, 3], torch.zeros(2)
    )  # the last DDIM step is deterministic
    BaseModelContract.perturb_adapter(model)  # a live adapter: the KL term gets a gradient too
    rollout = algo.rollout(model, init, cond, torch.Generator().manual_seed(2))
    loss, metrics = algo.loss(model, rollout, torch.tensor([1.0, -1.0]), step=1)
    assert metrics["ratio_min"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["ratio_max"] == pytest.approx(1.0, abs=1e-5) and metrics["kl"] > 0
    loss.backward()
    assert all(p.grad is not None for p in model.trainable_parameters())


def test_adapter_loads_in_cogvideox_pipeline(tiny_dir, tmp_path):
    from diffusers import CogVideoXPipeline

    model = make_model(tiny_dir)
    BaseModelContract.perturb_adapter(model)
    model.save_adapter(tmp_path / "adapter")
    pipe = CogVideoXPipeline.from_pretrained(str(tiny_dir))
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, 2, 4, 4, 4, generator=g)
    text = torch.randn(1, 226, 32, generator=g)
    rotary = model._rotary(2, 4, 4)
    kwargs = dict(hidden_states=hidden, encoder_hidden_states=text, timestep=torch.tensor([500]))
    with torch.no_grad():
        base = pipe.transformer(**kwargs, image_rotary_emb=rotary, return_dict=False)[0]
        pipe.load_lora_weights(str(tmp_path / "adapter"))
        loaded = pipe.transformer(**kwargs, image_rotary_emb=rotary, return_dict=False)[0]
        ours = model.transformer(**kwargs, image_rotary_emb=rotary, return_dict=False)[0]
    assert not torch.allclose(loaded, base)
    torch.testing.assert_close(loaded, ours, rtol=1e-5, atol=1e-6)


def test_preset_has_the_release_numbers(fresh_plugins):
    from worldr1_core.config import load_config

    cfg = load_config(REPO / "configs" / "world_r1_cogvideox_5b.toml")
    m, rl = cfg.model.options, cfg.rl.options
    assert cfg.model.name == "cogvideox" and m.max_sequence_length == 226
    assert (rl.guidance_scale, rl.noise_level, rl.num_steps, rl.sde_window) == (6.0, 0.7, 50, None)
    algo = cfg.rl.build()  # stochastic DDIM on every step; the first int(50 * 0.49) = 24 trained
    assert rl.sampler == "sde" and algo.select_train_steps() == list(range(24))
    assert cfg.latent_init.options.strength == 0.4
    assert (m.lora.rank, m.lora.alpha, m.lora.init) == (32, 64.0, "gaussian")
    assert sorted(m.lora.target_modules) == ["to_k", "to_out.0", "to_q", "to_v"]
    assert (cfg.video.frames, cfg.video.height, cfg.video.width) == (81, 480, 832)


CPU_OVERRIDES = [
    "model.preset=tiny",
    "model.dtype=fp32",
    "model.vae_dtype=fp32",
    "model.gradient_checkpointing=false",
    "model.lora={rank=4, alpha=8.0}",
    "train.mixed_precision=no",
    "video.frames=9",
    "video.height=32",
    "video.width=32",
    "rl.num_steps=4",
    "run.max_steps=2",
    "run.sample_every=0",
    "run.save_every=0",
    "run.progress_bar=false",
    "run.tensorboard=false",
    'rewards=[{name="brightness"}]',
]


@pytest.mark.slow
def test_cli_trains_the_cogvideox_preset_two_steps_on_cpu(tmp_path, monkeypatch, fresh_plugins):
    """`worldr1 train configs/world_r1_cogvideox_5b.toml model.preset=tiny ...` (the CPU override
    set of docs/base_models.md): noise warp -> DDIM rollouts -> reward -> 2 updates."""
    from worldr1_core.cli import main

    monkeypatch.setenv("WORLDR1_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    config = str(REPO / "configs" / "world_r1_cogvideox_5b.toml")
    assert main(["train", config, *CPU_OVERRIDES, f"run.output_dir={run_dir}"]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert abs(row["train/ratio_max"] - 1) < 1e-5 and row["train/grad_norm"] > 0
        assert row["reward/total/mean"] == row["reward/total/mean"]  # not NaN
    adapters = list(run_dir.rglob("pytorch_lora_weights.safetensors"))
    assert adapters, "no adapter saved at the end of the run"


def test_infer_recognizes_the_checkpoint_and_generates_with_a_trained_adapter(
    tiny_dir, tmp_path, fresh_plugins
):
    """`worldr1 infer --model DIR --lora ADAPTER` (the release's infer_cogvideox_lora.py): the
    checkpoint names its base model, and the adapter changes the generated video."""
    from worldr1_core.cli import main
    from worldr1_core.inference import base_model_for
    from worldr1_core.video_io import read_video

    assert base_model_for(str(tiny_dir)) == "cogvideox"
    model = make_model(tiny_dir)
    BaseModelContract.perturb_adapter(model, scale=0.5)
    model.save_adapter(tmp_path / "adapter")
    common = [
        "infer", "--model", str(tiny_dir), "--prompts", "Camera pan left. A red car.",
        "--seed", "0", "--no-warp", "video.frames=9", "video.height=32", "video.width=32",
        "rl.num_steps=4", "model.decoder=latent_preview", "model.lora={rank=4, alpha=64.0}",
    ]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "base")]) == 0
    assert (
        main([*common, "--lora", str(tmp_path / "adapter"), "--out", str(tmp_path / "lora")]) == 0
    )
    (base,), (lora,) = (sorted((tmp_path / d).rglob("*.mp4")) for d in ("base", "lora"))
    base_frames, _ = read_video(base)
    lora_frames, _ = read_video(lora)
    assert base_frames.shape[0] == 9 and tuple(base_frames.shape[-2:]) == (32, 32)
    assert (base_frames.float() - lora_frames.float()).abs().mean() > 1e-3


def test_stepwise_delta_injection_is_the_same_in_vp_and_rectified_flow_coordinates():
    """The release adds its camera delta to the VP state x_t; the sampler holds n x_t. The step
    renormalises to the latents' own statistics, so hook(n x) = n hook(x) for every scale n."""
    from worldr1_plugins.latent_init.stepwise_delta import stepwise_delta_hook

    g = torch.Generator().manual_seed(0)
    delta, x = torch.randn(2, 2, 4, 3, 8, 8, generator=g)
    hook = stepwise_delta_hook(delta, 0.4, 8)
    for n in (0.71, 0.9, 1.0):
        torch.testing.assert_close(hook(2, n * x, 0.5), n * hook(2, x, 0.5), rtol=1e-5, atol=1e-5)
    assert (hook(2, x, 0.5) - x).abs().mean() > 1e-2  # it does inject something
