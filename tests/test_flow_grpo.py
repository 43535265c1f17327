"""Flow-GRPO: closed-form checks of the SDE step, advantages, clipped objective, rollout and loss."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers.toy_models import SwitchableReference
from worldr1_core.interfaces import VideoModel
from worldr1_core.types import LatentLayout
from worldr1_plugins.rl_algos.flow_grpo import FlowGRPO, sde_step_with_logprob

torch.set_num_threads(2)


class LinearVideoModel(SwitchableReference, VideoModel):
    """A small but complete rectified-flow model: ``v = (W + dW) x + c(prompt) * (1 - sigma)``.

    ``dW`` is the trainable "adapter" (zero at start, like LoRA's B); ``reference()`` disables it.
    Enough to exercise rollout / ratio / KL without a video network.
    """

    def __init__(self, channels: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.channels = channels
        self.base = torch.randn(channels, channels, generator=g) * 0.3
        self.adapter = torch.nn.Parameter(torch.zeros(channels, channels))

    device = property(lambda self: torch.device("cpu"))
    dtype = property(lambda self: torch.float32)

    def latent_layout(self, frames, height, width):
        return LatentLayout(
            self.channels, frames, height, width, frames, height, width, list(range(frames))
        )

    def encode_prompts(self, prompts, negative_prompt=None):
        return torch.tensor([[float(len(p) % 5) / 5.0] for p in prompts])  # [B, 1]

    def sigmas(self, num_steps, latent_shape=None):
        return torch.linspace(1.0, 0.0, num_steps + 1)

    def velocity(self, latents, sigma, cond, guidance_scale=1.0):
        w = self.base if self._ref else self.base + self.adapter
        v = torch.einsum("ij,bj...->bi...", w, latents)
        c = cond.reshape(-1, *([1] * (latents.ndim - 1)))
        return v + c * (1.0 - sigma) * guidance_scale

    def decode(self, latents):
        return (
            latents.mean(1, keepdim=True)
            .sigmoid()
            .unsqueeze(2)
            .expand(-1, -1, 3, -1, -1)
            .transpose(1, 1)
        )

    def trainable_parameters(self):
        return [self.adapter]

    def trainable_module(self):
        return torch.nn.ParameterList([self.adapter])

    def save_adapter(self, directory):
        raise NotImplementedError

    def load_adapter(self, directory):
        raise NotImplementedError


def _algo(**kw) -> FlowGRPO:
    return FlowGRPO(FlowGRPO.Config(**kw))


# --------------------------------------------------------------------------- the SDE step


def test_logprob_matches_independent_gaussian_density():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 2, 5, 5, generator=g, dtype=torch.float64)
    v = torch.randn(3, 4, 2, 5, 5, generator=g, dtype=torch.float64)
    sigma, sigma_next, a = 0.6, 0.45, 0.7
    prev, log_prob, mean, std = sde_step_with_logprob(v, sigma, sigma_next, x, a, generator=g)

    # independent closed form (float64, written out from the SDE in the module docstring)
    dt = sigma_next - sigma
    s_t = a * math.sqrt(sigma / (1 - sigma))
    ref_mean = (
        x * (1 + s_t**2 * dt / (2 * sigma)) + v * (1 + s_t**2 * (1 - sigma) / (2 * sigma)) * dt
    )
    ref_std = s_t * math.sqrt(-dt)
    ref = torch.distributions.Normal(ref_mean, ref_std).log_prob(prev).flatten(1).mean(1)

    torch.testing.assert_close(mean, ref_mean)
    assert float(std.flatten()[0]) == pytest.approx(ref_std, rel=1e-12)
    torch.testing.assert_close(log_prob, ref, rtol=1e-10, atol=1e-10)

    # scoring a given sample returns the same density and leaves the sample unchanged
    prev2, log_prob2, _, _ = sde_step_with_logprob(v, sigma, sigma_next, x, a, prev_sample=prev)
    assert torch.equal(prev2, prev)
    torch.testing.assert_close(log_prob2, log_prob)


def test_sampled_noise_is_standard_normal():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 16, 8, 8, generator=g)
    v = torch.randn(4, 16, 8, 8, generator=g)
    prev, _, mean, std = sde_step_with_logprob(v, 0.8, 0.7, x, 0.9, generator=g)
    z = ((prev - mean) / std).flatten()
    assert abs(float(z.mean())) < 0.05
    assert abs(float(z.std()) - 1.0) < 0.05


def test_noise_level_zero_is_euler():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 3, 6, 6, generator=g)
    v = torch.randn(2, 4, 3, 6, 6, generator=g)
    prev, log_prob, mean, std = sde_step_with_logprob(v, 0.7, 0.5, x, 0.0, generator=g)
    torch.testing.assert_close(prev, x + v * (0.5 - 0.7))
    torch.testing.assert_close(mean, prev)
    assert torch.all(std == 0) and torch.all(log_prob == 0)


def test_sigma_one_is_finite_and_per_sample_sigmas_work():
    x = torch.randn(2, 4, 3, 3)
    v = torch.randn(2, 4, 3, 3)
    prev, log_prob, mean, std = sde_step_with_logprob(
        v, 1.0, 0.9, x, 0.7, generator=torch.Generator().manual_seed(0)
    )
    assert (
        torch.isfinite(prev).all() and torch.isfinite(log_prob).all() and torch.isfinite(std).all()
    )
    # [B] sigmas equal to scalars give the same step
    sig = torch.tensor([1.0, 1.0])
    _, lp_b, mean_b, _ = sde_step_with_logprob(
        v, sig, torch.tensor([0.9, 0.9]), x, 0.7, prev_sample=prev
    )
    torch.testing.assert_close(mean_b, mean)
    torch.testing.assert_close(lp_b, log_prob)


# --------------------------------------------------------------------------- advantages and objective


@pytest.mark.parametrize("global_std", [False, True])
def test_advantages_zero_mean_per_group(global_std):
    algo = _algo(global_std=global_std)
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 10.5, 9.5, 10.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    adv = algo.advantages(rewards, groups)
    for gid in (0, 1):
        assert abs(float(adv[groups == gid].mean())) < 1e-6
    if not global_std:  # per-group std: unit population std inside each group
        for gid in (0, 1):
            assert float(adv[groups == gid].std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    else:  # one normaliser for all: the spread of the low-variance group stays smaller
        assert float(adv[groups == 1].abs().max()) < float(adv[groups == 0].abs().max())


def test_advantages_clipped_and_constant_group_is_zero():
    algo = _algo(adv_clip=1.5)
    adv = algo.advantages(
        torch.tensor([0.0, 0.0, 0.0, 10.0, 3.0, 3.0]), torch.tensor([0, 0, 0, 0, 1, 1])
    )
    assert float(adv.abs().max()) == pytest.approx(1.5)
    assert torch.all(adv[4:] == 0)


def test_clipped_objective_has_no_gradient_outside_clip_range():
    algo = _algo(clip_range=1e-2)
    old = torch.zeros(4)
    # ratios 1.05 (above), 0.95 (below), 1.005 (inside), 1.05 with a negative advantage
    log_prob = torch.log(torch.tensor([1.05, 0.95, 1.005, 1.05])).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, ratio = algo.clipped_objective(log_prob, old, adv)
    loss.backward()
    grad = log_prob.grad
    assert grad[0] == 0 and grad[1] == 0  # pushed past the range: clipped, no gradient
    assert grad[2] == pytest.approx(-1.05 * 1.005 / 4 / 1.05, rel=1e-5)  # -A * r / B
    assert grad[3] != 0  # pessimistic branch: a bad sample whose ratio grew still gets a gradient
    torch.testing.assert_close(ratio, torch.tensor([1.05, 0.95, 1.005, 1.05]))


# --------------------------------------------------------------------------- rollout + loss on a model


def _rollout(algo, model, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, model.channels, 2, 4, 4, generator=g)
    cond = model.encode_prompts([f"prompt {i}" * (i + 1) for i in range(batch)])
    return algo.rollout(model, x0, cond, g)


def test_rollout_window_and_train_steps():
    algo = _algo(num_steps=10, sde_window=(2, 7), train_fraction=0.5, guidance_scale=1.0)
    model = LinearVideoModel()
    ro = _rollout(algo, model)
    assert ro.latents.shape == (4, 11, 4, 2, 4, 4) and ro.log_probs.shape == (4, 10)
    assert torch.all(ro.log_probs[:, [0, 1, 7, 8, 9]] == 0)  # ODE outside the window
    assert torch.all(ro.log_probs[:, 2:7] != 0)
    assert ro.train_steps == [2, 3, 4]  # ceil(0.5 * 5) first SDE steps
    rnd = _algo(num_steps=10, sde_window=(2, 7), train_fraction=0.5, train_step_selection="random")
    steps = rnd.select_train_steps(torch.Generator().manual_seed(3))
    assert len(steps) == 3 and all(2 <= s < 7 for s in steps)
    with pytest.raises(ValueError, match="sde_window"):
        _algo(num_steps=5, sde_window=(3, 9))


def test_rollout_ode_is_deterministic_euler_chain():
    algo = _algo(num_steps=4, noise_level=0.0, guidance_scale=1.0)
    model = LinearVideoModel()
    ro = _rollout(algo, model, batch=2)
    x = ro.latents[:, 0]
    sig = model.sigmas(4)
    for s in range(4):
        x = x + model.velocity(x, sig[s], ro.cond) * (sig[s + 1] - sig[s])
    torch.testing.assert_close(ro.final, x)


def test_first_inner_update_ratio_is_one_and_kl_zero():
    algo = _algo(num_steps=6, noise_level=0.8, guidance_scale=2.0, kl_beta=0.1)
    model = LinearVideoModel()
    with torch.no_grad():
        model.adapter.normal_(0, 0.05)  # a trained policy that differs from the reference
    ro = _rollout(algo, model)
    adv = algo.advantages(torch.tensor([1.0, 0.0, 2.0, 0.5]), torch.tensor([0, 0, 1, 1]))
    for step in ro.train_steps:
        loss, m = algo.loss(model, ro, adv, step)
        assert abs(m["ratio_max"] - 1) < 1e-5 and abs(m["ratio_min"] - 1) < 1e-5
        assert m["clip_frac"] == 0.0
        assert m["kl"] > 0
    # KL vanishes when the policy equals the reference
    with torch.no_grad():
        model.adapter.zero_()
    ro = _rollout(algo, model)
    _, m = algo.loss(model, ro, adv, ro.train_steps[0])
    assert m["kl"] == pytest.approx(0.0, abs=1e-12)


def test_kl_is_closed_form_mean_difference_over_variance():
    algo = _algo(num_steps=3, noise_level=0.5, guidance_scale=1.0, kl_beta=1.0)
    model = LinearVideoModel()
    with torch.no_grad():
        model.adapter.copy_(torch.eye(4) * 0.1)
    ro = _rollout(algo, model, batch=2)
    step = 1
    x = ro.latents[:, step]
    s, sn = float(ro.sigmas[step]), float(ro.sigmas[step + 1])
    _, metrics = algo.loss(model, ro, torch.zeros(2), step)
    dt = sn - s
    std_t = 0.5 * math.sqrt(s / (1 - s))
    dv = torch.einsum("ij,bj...->bi...", model.adapter.detach(), x)  # v_theta - v_ref
    d_mean = dv * (1 + std_t**2 * (1 - s) / (2 * s)) * dt
    expected = float(((d_mean**2).flatten(1).mean(1) / (2 * std_t**2 * -dt)).mean())
    assert metrics["kl"] == pytest.approx(expected, rel=1e-4)


def test_policy_gradient_moves_log_prob_of_good_samples_up():
    algo = _algo(num_steps=4, noise_level=0.8, guidance_scale=1.0, kl_beta=0.0, clip_range=0.2)
    model = LinearVideoModel()
    ro = _rollout(algo, model)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.5)
    step = ro.train_steps[0]
    loss, _ = algo.loss(model, ro, adv, step)
    loss.backward()
    assert model.adapter.grad.abs().sum() > 0
    opt.step()
    _, m = algo.loss(model, ro, adv, step)
    # after the step, the log-ratio of positive-advantage samples rose relative to negative ones
    x, x_next = ro.latents[:, step], ro.latents[:, step + 1]
    v = model.velocity(x, ro.sigmas[step], ro.cond)
    _, lp, _, _ = sde_step_with_logprob(
        v, float(ro.sigmas[step]), float(ro.sigmas[step + 1]), x, 0.8, prev_sample=x_next
    )
    delta = (lp - ro.log_probs[:, step]).detach()
    assert float(delta[adv > 0].mean()) > float(delta[adv < 0].mean())
