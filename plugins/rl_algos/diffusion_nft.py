"""``diffusion_nft``: DiffusionNFT, online RL on the forward process (Zheng et al., ICLR 2026,
arXiv 2509.16117). Select it with ``[rl] name = "diffusion_nft"``.

The sampler is a black box: it only has to deliver clean samples ``x0`` (their rewards come from
the trainer). No likelihoods, no SDE, no CFG in the update. For each sample and each of
``num_train_steps()`` noise levels ``t`` (a random subset of the sampling schedule's levels, per
sample) the update noises ``x0`` by the forward process ``x_t = (1 - t) x0 + t eps`` and compares
the trained velocity ``v`` with the *old* policy's ``v_old`` (the policy that sampled, see
``old_decay``)::

    r      = clip((clip(A, -C, C) / C) / 2 + 1/2, 0, 1)     # optimality probability from advantage A
    v_pos  = beta v + (1 - beta) v_old                      # implicit positive policy
    v_neg  = (1 + beta) v_old - beta v                      # implicit negative policy
    x0_pos = x_t - t v_pos,   x0_neg = x_t - t v_neg        # their clean-sample predictions
    L_pos  = mean((x0_pos - x0)^2) / sg(mean|x0_pos - x0|)  # adaptive weighting (per sample)
    L_neg  = mean((x0_neg - x0)^2) / sg(mean|x0_neg - x0|)
    loss   = C mean(r L_pos + (1 - r) L_neg) / beta + kl_beta mean((v - v_ref)^2)

``v_ref`` is the base model (adapter disabled). High-reward samples pull the positive policy
towards them, low-reward ones push the negative policy towards them (so the trained one away).

Sampler: ``sampler = "euler"`` integrates the probability-flow ODE on the model's sigmas;
``sampler = "release"`` steps the checkpoint's scheduler exactly like Flow-GRPO's release mode
(:mod:`.stepping`, UniPC for Wan), with the initializer's step hook (the release's camera delta).

Old policy: ``old_decay = 0`` (default) makes ``v_old`` the policy that sampled the step (its
weights at the step's first loss call); ``old_decay = d > 0`` keeps ``old <- d old + (1 - d)
current`` across steps, as the authors' slowly updated old model (that state is not in
checkpoints: a resumed run restarts it from the current weights). While the weights still equal
the old ones (one optimizer update per step) ``v_old = sg(v)`` and its forward pass is skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import RLAlgorithm, StepHook, VideoModel
from worldr1_core.types import Rollout

from .stepping import FlowScheduler, SchedulerKind, scheduled_rollout

_TOKENS = itertools.count()


def nft_weights(advantages: torch.Tensor, adv_clip: float) -> torch.Tensor:
    """The optimality probability ``r = clip((clip(A, -C, C) / C) / 2 + 1/2, 0, 1)`` ``[B]``."""
    a = advantages.clamp(-adv_clip, adv_clip)
    return (a / adv_clip / 2.0 + 0.5).clamp(0.0, 1.0)


def nft_policy_loss(
    v: torch.Tensor,
    v_old: torch.Tensor,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    beta: float,
    adv_clip: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The DiffusionNFT policy loss (module docstring) for velocities ``v, v_old [B, ...]`` at
    ``x_t`` with noise levels ``t [B]``, clean samples ``x0`` and weights ``r [B]``."""
    dims = tuple(range(1, x0.ndim))
    t_ = t.to(torch.float32).reshape(-1, *([1] * (x0.ndim - 1)))
    v, v_old, x0, x_t = v.float(), v_old.float().detach(), x0.float(), x_t.float()
    v_pos = beta * v + (1.0 - beta) * v_old
    v_neg = (1.0 + beta) * v_old - beta * v

    def adaptive(v_pred: torch.Tensor) -> torch.Tensor:
        x0_pred = x_t - t_ * v_pred
        err = x0_pred - x0
        with torch.no_grad():
            weight = err.abs().double().mean(dim=dims).clamp(min=1e-5).float()
        return (err**2).mean(dim=dims) / weight  # [B]

    pos, neg = adaptive(v_pos), adaptive(v_neg)
    r = r.to(pos)
    per_sample = (r * pos + (1.0 - r) * neg) / beta
    loss = adv_clip * per_sample.mean()
    return loss, {
        "policy_loss": float(loss.detach()),
        "positive_loss": float(pos.detach().mean()),
        "negative_loss": float(neg.detach().mean()),
        "old_deviate": float(((v.detach() - v_old) ** 2).mean()),
    }


class DiffusionNFT(RLAlgorithm):
    """DiffusionNFT: forward-process policy optimisation with implicit positive/negative policies."""

    class Config(pydantic.BaseModel, extra="forbid"):
        group_size: int = pydantic.Field(4, ge=1, description="videos sampled per prompt")
        num_steps: int = pydantic.Field(10, ge=1, description="denoising steps of a rollout")
        guidance_scale: float = pydantic.Field(
            1.0, ge=0.0, description="CFG scale of the sampler (1: none; the update never uses CFG)"
        )
        sampler: Literal["euler", "release"] = pydantic.Field(
            "euler",
            description="euler: ODE on the model's sigmas; release: the checkpoint's scheduler "
            "(UniPC for Wan) as Flow-GRPO's release sampler",
        )
        scheduler: SchedulerKind = pydantic.Field(
            "model", description="sampler='release': model (the checkpoint's), unipc or euler"
        )
        train_fraction: float = pydantic.Field(
            0.99,
            gt=0.0,
            le=1.0,
            description="noise levels trained per sample: int(train_fraction * num_steps), >= 1",
        )
        beta: float = pydantic.Field(1.0, gt=0.0, description="strength of the implicit policies")
        adv_clip: float = pydantic.Field(5.0, gt=0.0, description="advantages clipped to +-C")
        adv_eps: float = pydantic.Field(1e-4, gt=0.0, description="added to the advantage std")
        global_std: bool = pydantic.Field(False, description="normalise by the std of all samples")
        kl_beta: float = pydantic.Field(
            1e-4, ge=0.0, description="weight of ||v - v_ref||^2 (0 skips the reference forward)"
        )
        old_decay: float = pydantic.Field(
            0.0, ge=0.0, lt=1.0, description="old policy <- d old + (1 - d) current, per step"
        )

    def __init__(self, config: pydantic.BaseModel | None = None):
        super().__init__(config)
        self._old: list[torch.Tensor] | None = None
        self._old_token: int | None = None

    def num_train_steps(self) -> int:
        return max(1, int(self.config.train_fraction * self.config.num_steps + 1e-9))

    # ------------------------------------------------------------------ sampling (a black box)

    @torch.no_grad()
    def rollout(
        self,
        model: VideoModel,
        initial_latents: torch.Tensor,
        cond: Any,
        generator: torch.Generator,
        *,
        step_hook: StepHook | None = None,
    ) -> Rollout:
        c = self.config
        if c.sampler == "release":
            sched = FlowScheduler(c.scheduler, model.scheduler_config(), c.num_steps)
            latents, _ = scheduled_rollout(
                model, initial_latents, cond, c.guidance_scale, sched, step_hook=step_hook
            )
            x0 = latents[:, -1]
            levels = sched.model_sigmas.to(torch.float32)  # [S] where the model was evaluated
        else:
            sigmas = model.sigmas(c.num_steps, initial_latents.shape[1:]).float().cpu()
            x = initial_latents
            for s in range(c.num_steps):
                v = model.velocity(x, sigmas[s].to(x.device), cond, c.guidance_scale)
                x = (x.float() + (sigmas[s + 1] - sigmas[s]).item() * v.float()).to(x.dtype)
                if step_hook is not None:
                    x = step_hook(s, x, float(sigmas[s + 1]))
            x0 = x
            levels = sigmas[:-1]  # [S]
        b, k = x0.shape[0], self.num_train_steps()
        gen_device = generator.device
        order = torch.stack(
            [
                torch.randperm(len(levels), generator=generator, device=gen_device)[:k]
                for _ in range(b)
            ]
        ).cpu()  # [B, K] a random subset of the levels per sample
        seeds = torch.randint(0, 2**62, (b,), generator=generator, device=gen_device).cpu()
        return Rollout(
            latents=torch.stack([initial_latents, x0], dim=1),  # only the start and the end
            log_probs=None,
            sigmas=levels,
            train_steps=list(range(k)),
            cond=cond,
            per_sample={"t": levels[order], "seed": seeds},  # [B, K], [B]
            extras={"token": next(_TOKENS)},
        )

    # ------------------------------------------------------------------ advantages

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """``(r - mean_group) / (std + eps)`` (std per group, or over all with ``global_std``)."""
        r = rewards.double()
        _, inverse = torch.unique(group_ids, return_inverse=True)
        n = int(inverse.max()) + 1
        counts = torch.zeros(n, dtype=r.dtype).index_add_(0, inverse, torch.ones_like(r))
        means = torch.zeros(n, dtype=r.dtype).index_add_(0, inverse, r) / counts
        centred = r - means[inverse]
        if self.config.global_std:
            std = r.std(unbiased=False).expand_as(r)
        else:
            var = torch.zeros(n, dtype=r.dtype).index_add_(0, inverse, centred**2) / counts
            std = var.sqrt()[inverse]
        return (centred / (std + self.config.adv_eps)).to(rewards.dtype)

    # ------------------------------------------------------------------ the update

    def _sync_old(self, model: VideoModel, token: Any) -> None:
        """At a step's first loss call: the old policy catches up with the sampling weights."""
        if token == self._old_token and self._old is not None:
            return
        current = [p.detach() for p in model.trainable_parameters()]
        d = self.config.old_decay
        if self._old is None or d == 0.0:
            self._old = [p.clone() for p in current]
        else:
            for o, p in zip(self._old, current):
                o.lerp_(p.to(o.dtype), 1.0 - d)
        self._old_token = token

    @torch.no_grad()
    def _old_velocity(self, model: VideoModel, x_t, t, cond, v: torch.Tensor) -> torch.Tensor:
        params = model.trainable_parameters()
        assert self._old is not None
        if all(torch.equal(p, o) for p, o in zip(params, self._old)):
            return v.detach()  # the weights are the old ones: same forward
        saved = [p.detach().clone() for p in params]
        try:
            for p, o in zip(params, self._old):
                p.copy_(o)
            return model.velocity(x_t, t, cond, 1.0)
        finally:
            for p, s in zip(params, saved):
                p.copy_(s)

    @staticmethod
    def noise(rollout: Rollout, step: int, like: torch.Tensor) -> torch.Tensor:
        """The forward-process noise of each sample at train step ``step`` (from its seed)."""
        out = []
        for seed in rollout.per_sample["seed"].tolist():
            g = torch.Generator().manual_seed((int(seed) + 1_000_003 * step) % (2**63))
            out.append(torch.randn(like.shape[1:], generator=g, dtype=torch.float32))
        return torch.stack(out).to(like.device)

    def loss(
        self, model: VideoModel, rollout: Rollout, advantages: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        self._sync_old(model, rollout.extras.get("token"))
        x0 = rollout.final.float()  # [B, C, F', H', W']
        t = rollout.per_sample["t"][:, step].to(x0.device, torch.float32)  # [B]
        eps = self.noise(rollout, step, x0)
        t_ = t.reshape(-1, *([1] * (x0.ndim - 1)))
        x_t = (1.0 - t_) * x0 + t_ * eps
        v = model.velocity(x_t, t, rollout.cond, 1.0)
        v_old = self._old_velocity(model, x_t, t, rollout.cond, v)
        r = nft_weights(advantages.to(x0.device, torch.float32), c.adv_clip)
        loss, metrics = nft_policy_loss(v, v_old, x0, x_t, t, r, c.beta, c.adv_clip)
        kl = torch.zeros((), device=x0.device)
        if c.kl_beta > 0:
            with torch.no_grad(), model.reference():
                v_ref = model.velocity(x_t, t, rollout.cond, 1.0)
            kl = ((v.float() - v_ref.float()) ** 2).mean()
            loss = loss + c.kl_beta * kl
        metrics["kl"] = float(kl.detach())
        return loss, metrics

    def summary(self, metrics: Mapping[str, float]) -> str:
        return (
            f"nft {metrics.get('train/policy_loss', float('nan')):+.4g} "
            f"kl {metrics.get('train/kl', float('nan')):.3g}"
        )


@hookimpl
def worldr1_register_rl_algorithms(register):
    register(
        "diffusion_nft",
        DiffusionNFT,
        description="DiffusionNFT: forward-process RL with implicit positive/negative policies "
        "(black-box sampler, CFG-free update)",
    )
