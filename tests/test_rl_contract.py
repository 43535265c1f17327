"""The trainer <-> RL algorithm contract (``RLAlgorithm`` in worldr1_core/interfaces.py).

A second algorithm, written here and registered like any plugin, trains through the unchanged
trainer: reward-weighted regression on the forward process (no log-probabilities, no CFG in the
update). ODE samples ``x0`` are re-noised, ``x_s = (1 - s) x0 + s eps``, and the velocity is
regressed onto ``eps - x0`` with per-sample weights ``softmax(A / T)``.
"""

from __future__ import annotations

import math

import pydantic
import torch

from worldr1_core import hookimpl
from worldr1_core.interfaces import RLAlgorithm, StepHook, VideoModel
from worldr1_core.plugins import get_plugin_manager
from worldr1_core.testing import run_config
from worldr1_core.testing.brightness_task import PROMPTS, tiny_run_sections
from worldr1_core.trainer import Trainer
from worldr1_core.types import Rollout

torch.set_num_threads(2)


class ForwardRWR(RLAlgorithm):
    """Reward-weighted regression on forward-process noising of the clean samples."""

    class Config(pydantic.BaseModel, extra="forbid"):
        group_size: int = 2
        num_steps: int = 3
        guidance_scale: float = 2.0
        train_sigmas: tuple[float, ...] = (0.3, 0.6, 0.9)
        temperature: float = 1.0

    def __init__(self, config=None):
        super().__init__(config)
        self.calls: list[tuple[int, list[int], torch.Tensor]] = []  # (step, sample ids, loss)
        self.inputs: list[tuple[int, Rollout, torch.Tensor]] = []

    def num_train_steps(self) -> int:
        return len(self.config.train_sigmas)

    @torch.no_grad()
    def rollout(
        self,
        model: VideoModel,
        initial_latents: torch.Tensor,
        cond,
        generator: torch.Generator,
        *,
        step_hook: StepHook | None = None,
    ) -> Rollout:
        c = self.config
        sigmas = model.sigmas(c.num_steps, initial_latents.shape[1:]).float().cpu()
        x = initial_latents
        for s in range(c.num_steps):
            v = model.velocity(x, sigmas[s].to(x.device), cond, c.guidance_scale)
            x = x + (sigmas[s + 1] - sigmas[s]).item() * v  # Euler step of the ODE
            if step_hook is not None:
                x = step_hook(s, x, float(sigmas[s + 1]))
        b = x.shape[0]
        noise = torch.randn(
            (b, len(c.train_sigmas), *x.shape[1:]), generator=generator, dtype=x.dtype
        )
        return Rollout(
            latents=torch.stack([initial_latents, x], dim=1),  # only the start and the end
            log_probs=None,
            sigmas=torch.tensor(c.train_sigmas),
            train_steps=list(range(len(c.train_sigmas))),
            cond=cond,
            per_sample={"noise": noise, "sample_id": torch.arange(b)},
        )

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        means = {int(g): rewards[group_ids == g].mean() for g in group_ids.unique()}
        centred = rewards - torch.stack([means[int(g)] for g in group_ids])
        return centred / (rewards.std(unbiased=False) + 1e-6)

    def weighted_mse(
        self, model: VideoModel, rollout: Rollout, advantages: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = float(rollout.sigmas[step])
        x0 = rollout.final
        eps = rollout.per_sample["noise"][:, step].to(x0)
        x_t = (1.0 - sigma) * x0 + sigma * eps
        v = model.velocity(x_t, torch.tensor(sigma, device=x0.device), rollout.cond, 1.0)
        per_sample = ((v.float() - (eps - x0).float()) ** 2).mean(dim=tuple(range(1, v.ndim)))
        w = torch.softmax(advantages.float() / self.config.temperature, 0) * len(advantages)
        return (w.detach() * per_sample).mean(), w

    def loss(self, model, rollout, advantages, step):
        loss, w = self.weighted_mse(model, rollout, advantages, step)
        self.calls.append((step, rollout.per_sample["sample_id"].tolist(), loss.detach()))
        self.inputs.append((step, rollout, advantages.detach().clone()))
        return loss, {"weighted_mse": float(loss.detach()), "weight_max": float(w.max())}


class RWRPlugin:
    @hookimpl
    def worldr1_register_rl_algorithms(self, register):
        register("forward_rwr", ForwardRWR)


def sections() -> dict:
    return tiny_run_sections(
        "wan2.1",
        {"name": "forward_rwr", "group_size": 2},
        run={"seed": 5},
        train={"lr": 1e-3, "minibatch_size": 2},
        prompts={"train": {"prompts": PROMPTS[:2]}},
    )


def test_second_algorithm_trains_through_the_trainer(tmp_path, fresh_plugins, capsys):
    get_plugin_manager().register(RWRPlugin(), name="rwr_test")
    trainer = Trainer(run_config(tmp_path, sections()), run_dir=tmp_path / "run")
    algo = trainer.algo
    assert isinstance(algo, ForwardRWR)
    metrics = trainer.train(max_steps=1)

    # every sample's every train step: 2 minibatches x 3 noise levels, each minibatch's samples
    # selected with their own per-sample tensors
    assert [c[0] for c in algo.calls] == [0, 1, 2, 0, 1, 2]
    seen = sorted(i for c in algo.calls[::3] for i in c[1])
    assert seen == [0, 1, 2, 3]
    # the algorithm's metrics, reduced by the default mean over the 6 loss calls
    mse = [float(c[2]) for c in algo.calls]
    assert math.isclose(metrics["train/weighted_mse"], sum(mse) / 6, rel_tol=1e-6)
    assert math.isclose(metrics["train/loss"], sum(mse) / 6, rel_tol=1e-6)
    assert metrics["train/weight_max"] > 1.0  # the rewards differ: someone is up-weighted
    assert not any(k.startswith("train/ratio") or k == "train/kl" for k in metrics)
    assert metrics["train/updates"] == 1
    assert "kl" not in capsys.readouterr().out.split("reward")[1]

    # the one AdamW update went down the algorithm's gradient: on the step's own minibatches
    # the weighted regression loss fell
    with torch.no_grad():
        after = [
            float(algo.weighted_mse(trainer.model, sub, adv, step)[0])
            for step, sub, adv in algo.inputs
        ]
    assert sum(after) < sum(mse), (after, mse)
