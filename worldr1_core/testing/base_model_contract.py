"""A contract test suite that any base-model plugin (shipped or third-party) runs against itself.

Usage, in the plugin's own tests::

    import pytest
    from worldr1_core.testing.base_model_contract import BaseModelContract

    class TestMyModelContract(BaseModelContract):
        frames, height, width = 9, 32, 32          # a size the tiny model supports

        @pytest.fixture
        def model_factory(self, tmp_path_factory):
            ckpt = build_my_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))
            return lambda: MyModel(MyModel.Config(path=str(ckpt), device="cpu", dtype="fp32"))

``model_factory()`` must return a *fresh* model each call, with the same base weights and the
same initial adapter every time (build from a fixed checkpoint and seed). The suite checks what
the rest of worldr1 relies on (see :class:`worldr1_core.interfaces.VideoModel`):

* latent layout (shape, ``frame_indices``, rejection of unsupported sizes), the sigma schedule;
* velocity shape, prompt and sigma dependence, scalar-sigma broadcast, deterministic encoding;
* classifier-free guidance: linear in the scale, ``scale 0`` = negative-prompt velocity, ONE
  forward of the trainable module per guided call;
* decode shape and range;
* ``reference()`` = the base model exactly, whatever the adapter holds;
* one optimizer step changes every trainable parameter and nothing else;
* ``save_adapter`` -> ``load_adapter`` in a fresh model reproduces the outputs.

The suite perturbs the adapter itself (adds noise to :meth:`trainable_parameters`), so it needs
no plugin-specific LoRA options (a LoRA with ``B = 0`` is invisible until trained).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
import torch

from ..interfaces import VideoModel

ModelFactory = Callable[[], VideoModel]

PROMPTS = [
    "Camera orbit left. A red car on a coastal road.",
    "Camera push in. A wooden cabin in snow.",
]
NEGATIVE = "blurry, static"


def _frozen_modules(model: VideoModel) -> dict[str, torch.nn.Module]:
    """The torch modules a model holds as attributes (transformer, VAE, text encoder, ...)."""
    return {
        name: value for name, value in vars(model).items() if isinstance(value, torch.nn.Module)
    }


def _snapshot(model: VideoModel) -> dict[str, torch.Tensor]:
    trainable = {id(p) for p in model.trainable_parameters()}
    out: dict[str, torch.Tensor] = {}
    for mod_name, module in _frozen_modules(model).items():
        for name, p in module.named_parameters():
            if id(p) not in trainable:
                out[f"{mod_name}.{name}"] = p.detach().clone()
    return out


class BaseModelContract:
    """Mixin of pytest tests; subclass it and provide the ``model_factory`` fixture."""

    frames: int = 9
    height: int = 32
    width: int = 32
    guidance_scale: float = 4.0
    #: tolerances for comparisons between two forwards that should agree (batched vs separate)
    rtol: float = 1e-5
    atol: float = 1e-5

    @pytest.fixture
    def model_factory(
        self,
    ) -> Callable[[], VideoModel]:  # pragma: no cover - provided by subclasses
        raise NotImplementedError("subclass BaseModelContract and define a `model_factory` fixture")

    # -- helpers -------------------------------------------------------------------------------

    def inputs(
        self, model: VideoModel, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noisy latents ``x_sigma`` [B, C, F', H', W'], per-sample ``sigma`` [B] and the
        rectified-flow target ``v = noise - x0``."""
        layout = model.latent_layout(self.frames, self.height, self.width)
        g = torch.Generator().manual_seed(seed)
        x0 = torch.randn(len(PROMPTS), *layout.shape, generator=g)
        noise = torch.randn(x0.shape, generator=g)
        sigma = torch.tensor([0.8, 0.35])
        s = sigma.view(-1, 1, 1, 1, 1)
        x = (1 - s) * x0 + s * noise
        return x.to(model.device), sigma.to(model.device), (noise - x0).to(model.device)

    @staticmethod
    def perturb_adapter(model: VideoModel, seed: int = 1, scale: float = 0.05) -> None:
        """Add noise to every trainable parameter so that the adapter changes the output."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.trainable_parameters():
                p.add_(scale * torch.randn(p.shape, generator=g).to(p.device, p.dtype))

    def velocity(
        self,
        model: VideoModel,
        x: torch.Tensor,
        sigma: torch.Tensor | float,
        cond: Any,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        with torch.no_grad():
            return model.velocity(x, sigma, cond, guidance_scale).float()

    # -- the contract --------------------------------------------------------------------------

    def test_contract_is_a_video_model_with_strict_config(
        self, model_factory: ModelFactory
    ) -> None:
        model = model_factory()
        assert isinstance(model, VideoModel)
        assert isinstance(model.device, torch.device) and isinstance(model.dtype, torch.dtype)
        config_cls = type(model).Config
        assert issubclass(config_cls, pydantic.BaseModel)
        with pytest.raises(pydantic.ValidationError):
            config_cls.model_validate({"surely_not_an_option": 1})

    def test_contract_latent_layout(self, model_factory: ModelFactory) -> None:
        model = model_factory()
        layout = model.latent_layout(self.frames, self.height, self.width)
        c, f, h, w = layout.shape
        assert (layout.frames, layout.height, layout.width) == (
            self.frames,
            self.height,
            self.width,
        )
        assert min(c, f, h, w) >= 1 and f <= self.frames and h <= self.height and w <= self.width
        idx = layout.frame_indices
        assert len(idx) == f and idx[0] == 0 and all(0 <= i < self.frames for i in idx)
        assert all(b > a for a, b in zip(idx, idx[1:])), f"frame_indices must increase: {idx}"
        assert self.height % layout.latent_height == 0 and self.width % layout.latent_width == 0
        with pytest.raises(ValueError):
            model.latent_layout(self.frames, self.height + 1, self.width)

    def test_contract_sigmas_go_from_one_to_zero(self, model_factory: ModelFactory) -> None:
        model = model_factory()
        shape = model.latent_layout(self.frames, self.height, self.width).shape
        for n in (1, 4, 20):
            s = model.sigmas(n, shape)
            assert s.shape == (n + 1,)
            assert float(s[0]) == pytest.approx(1.0) and float(s[-1]) == 0.0
            assert bool((s[1:] < s[:-1]).all()), f"sigmas must decrease: {s.tolist()}"

    def test_contract_velocity_shape_and_dependence(self, model_factory: ModelFactory) -> None:
        model = model_factory()
        cond = model.encode_prompts(PROMPTS, NEGATIVE)
        x, sigma, _ = self.inputs(model)
        v = self.velocity(model, x, sigma, cond)
        assert v.shape == x.shape and torch.isfinite(v).all()
        swapped = model.encode_prompts(list(reversed(PROMPTS)), NEGATIVE)
        assert not torch.allclose(self.velocity(model, x, sigma, swapped), v), (
            "velocity ignores the prompt"
        )
        assert not torch.allclose(self.velocity(model, x, sigma.flip(0), cond), v), (
            "velocity ignores sigma"
        )
        # a scalar sigma is broadcast over the batch
        torch.testing.assert_close(
            self.velocity(model, x, 0.5, cond),
            self.velocity(model, x, torch.full_like(sigma, 0.5), cond),
            rtol=self.rtol,
            atol=self.atol,
        )
        # prompt encoding is deterministic (and may be cached)
        again = model.encode_prompts(PROMPTS, NEGATIVE)
        torch.testing.assert_close(self.velocity(model, x, sigma, again), v, rtol=0, atol=0)

    def test_contract_cfg_is_linear_one_forward_and_uses_negative_prompt(
        self, model_factory: ModelFactory
    ) -> None:
        model = model_factory()
        self.perturb_adapter(model)
        cond = model.encode_prompts(PROMPTS, NEGATIVE)
        x, sigma, _ = self.inputs(model)
        calls: list[int] = []
        hook = model.trainable_module().register_forward_hook(lambda *a: calls.append(1))
        try:
            guided = self.velocity(model, x, sigma, cond, self.guidance_scale)
            assert len(calls) == 1, f"CFG must be one batched forward, saw {len(calls)}"
        finally:
            hook.remove()
        v_cond = self.velocity(model, x, sigma, cond, 1.0)
        v_uncond = self.velocity(model, x, sigma, cond, 0.0)
        assert not torch.allclose(v_cond, v_uncond)
        torch.testing.assert_close(
            guided,
            v_uncond + self.guidance_scale * (v_cond - v_uncond),
            rtol=self.rtol,
            atol=self.atol,
        )
        negative_as_prompt = model.encode_prompts([NEGATIVE] * len(PROMPTS), NEGATIVE)
        torch.testing.assert_close(
            v_uncond,
            self.velocity(model, x, sigma, negative_as_prompt),
            rtol=self.rtol,
            atol=self.atol,
        )

    def test_contract_decode(self, model_factory: ModelFactory) -> None:
        model = model_factory()
        layout = model.latent_layout(self.frames, self.height, self.width)
        z = torch.randn(2, *layout.shape, generator=torch.Generator().manual_seed(3)).to(
            model.device
        )
        with torch.no_grad():
            video = model.decode(z)
        assert video.shape == (2, self.frames, 3, self.height, self.width)
        assert video.is_floating_point() and float(video.min()) >= 0.0 and float(video.max()) <= 1.0

    def test_contract_reference_is_the_base_model(self, model_factory: ModelFactory) -> None:
        model, fresh = model_factory(), model_factory()
        cond = model.encode_prompts(PROMPTS, NEGATIVE)
        x, sigma, _ = self.inputs(model)
        with model.reference():
            before = self.velocity(model, x, sigma, cond, self.guidance_scale)
        self.perturb_adapter(model)
        with model.reference():
            ref = self.velocity(model, x, sigma, cond, self.guidance_scale)
        with fresh.reference():
            base = self.velocity(
                fresh, x, sigma, fresh.encode_prompts(PROMPTS, NEGATIVE), self.guidance_scale
            )
        adapted = self.velocity(model, x, sigma, cond, self.guidance_scale)
        assert torch.equal(ref, before), "reference() output depends on the adapter"
        assert torch.equal(ref, base), "reference() differs from a freshly loaded base model"
        assert not torch.allclose(adapted, ref), "the adapter is not active outside reference()"

    def test_contract_training_step_changes_only_trainable_params(
        self, model_factory: ModelFactory
    ) -> None:
        model = model_factory()
        self.perturb_adapter(model)  # non-zero everywhere, so every LoRA factor gets a gradient
        params = model.trainable_parameters()
        assert params and all(p.requires_grad for p in params)
        module_params = {id(p) for p in model.trainable_module().parameters()}
        assert all(id(p) in module_params for p in params), (
            "trainable params must live in trainable_module()"
        )
        frozen = _snapshot(model)
        assert frozen, "the model exposes no frozen modules as attributes"
        assert not any(
            p.requires_grad
            for m in _frozen_modules(model).values()
            for p in m.parameters()
            if id(p) not in {id(q) for q in params}
        ), "a non-trainable parameter requires grad"
        before = [p.detach().clone() for p in params]
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
        cond = model.encode_prompts(PROMPTS, NEGATIVE)
        x, sigma, target = self.inputs(model)
        loss = torch.nn.functional.mse_loss(
            model.velocity(x, sigma, cond, self.guidance_scale).float(), target.float()
        )
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
        opt.step()
        unchanged = [
            i for i, (p, b) in enumerate(zip(params, before)) if torch.equal(p.detach(), b)
        ]
        assert not unchanged, f"{len(unchanged)} of {len(params)} trainable params did not change"
        after = _snapshot(model)
        moved = [k for k, v in frozen.items() if not torch.equal(after[k], v)]
        assert not moved, f"frozen parameters changed: {moved[:5]}"

    def test_contract_adapter_round_trip(self, model_factory: ModelFactory, tmp_path: Path) -> None:
        model, fresh = model_factory(), model_factory()
        self.perturb_adapter(model)
        cond = model.encode_prompts(PROMPTS, NEGATIVE)
        x, sigma, _ = self.inputs(model)
        expected = self.velocity(model, x, sigma, cond, self.guidance_scale)
        model.save_adapter(tmp_path / "adapter")
        assert any((tmp_path / "adapter").iterdir()), "save_adapter wrote nothing"
        fresh_cond = fresh.encode_prompts(PROMPTS, NEGATIVE)
        assert not torch.equal(
            self.velocity(fresh, x, sigma, fresh_cond, self.guidance_scale), expected
        )
        fresh.load_adapter(tmp_path / "adapter")
        torch.testing.assert_close(
            self.velocity(fresh, x, sigma, fresh_cond, self.guidance_scale),
            expected,
            rtol=0,
            atol=0,
        )


__all__ = ["BaseModelContract", "NEGATIVE", "PROMPTS"]
