"""The shipped base models pass the reusable base-model contract (worldr1_core.testing)."""

from __future__ import annotations

import pytest
import torch

from worldr1_core.testing.base_model_contract import BaseModelContract
from worldr1_plugins.base_models.wan2_1 import Wan21, ensure_tiny_checkpoint

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_wan_dir(tmp_path_factory):
    return ensure_tiny_checkpoint(tmp_path_factory.mktemp("wan_contract"))


class TestWan21Contract(BaseModelContract):
    frames, height, width = 9, 32, 48

    @pytest.fixture
    def model_factory(self, tiny_wan_dir):
        return lambda: Wan21(
            Wan21.Config(path=str(tiny_wan_dir), device="cpu", dtype="fp32", lora={"rank": 4})
        )


# The suite has teeth: deliberately broken variants of the plugin fail the matching clause.


class _NoReference(Wan21):
    def reference(self):
        import contextlib

        return contextlib.nullcontext()  # bug: the adapter stays on


class _TwoForwardCFG(Wan21):
    def velocity(self, latents, sigma, cond, guidance_scale=1.0):
        v_c = super().velocity(latents, sigma, cond, 1.0)
        if guidance_scale == 1.0:
            return v_c
        uncond = type(cond)(
            cond.negative, cond.negative, cond.negative_mask, cond.negative_mask, cond.prompts
        )
        v_u = super().velocity(latents, sigma, uncond, 1.0)  # bug: a second forward
        return v_u + guidance_scale * (v_c - v_u)


class _TrainsTheVae(Wan21):
    def trainable_parameters(self):
        self.vae.requires_grad_(True)  # bug: frozen weights leak into the optimizer
        return super().trainable_parameters() + list(self.vae.parameters())


@pytest.mark.parametrize(
    "cls, clause",
    [
        (_NoReference, "test_contract_reference_is_the_base_model"),
        (_TwoForwardCFG, "test_contract_cfg_is_linear_one_forward_and_uses_negative_prompt"),
        (_TrainsTheVae, "test_contract_training_step_changes_only_trainable_params"),
    ],
)
def test_contract_catches_broken_models(cls, clause, tiny_wan_dir):
    suite = TestWan21Contract()

    def factory():
        return cls(
            Wan21.Config(path=str(tiny_wan_dir), device="cpu", dtype="fp32", lora={"rank": 4})
        )

    with pytest.raises(AssertionError):
        getattr(suite, clause)(factory)


class TestLTXVideoContract(BaseModelContract):
    frames, height, width = 9, 32, 48

    @pytest.fixture
    def model_factory(self, tmp_path_factory):
        from worldr1_plugins.base_models.ltx_video import LTXVideo
        from worldr1_plugins.base_models.ltx_video import ensure_tiny_checkpoint as ensure_tiny_ltx

        ckpt = ensure_tiny_ltx(tmp_path_factory.getbasetemp() / "ltx_contract")
        return lambda: LTXVideo(
            LTXVideo.Config(path=str(ckpt), device="cpu", dtype="fp32", lora={"rank": 4})
        )
