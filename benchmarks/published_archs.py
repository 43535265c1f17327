"""Published architecture configs of the models that the GPU and memory benchmarks build with
random weights (no downloads): the numbers of the checkpoints' config files.

Wan2.1 T2V (``wan/configs/wan_t2v_{1_3B,14B}.py``; dim = heads x 128) as ``WanTransformer3DModel``
keywords, on top of what every Wan2.1 transformer shares (the plugin's ``TRANSFORMER_COMMON``);
LTX-Video 2B (the diffusers ``LTXVideoTransformer3DModel`` defaults); the UMT5-XXL text encoder
(``text_encoder/config.json`` of the Wan2.1 Diffusers checkpoints).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from worldr1_plugins.base_models.wan2_1 import TRANSFORMER_COMMON

WAN21_T2V_1_3B = dict(
    num_attention_heads=12,
    attention_head_dim=128,
    ffn_dim=8960,
    num_layers=30,
    text_dim=4096,
    **TRANSFORMER_COMMON,
)
WAN21_T2V_14B = dict(
    num_attention_heads=40,
    attention_head_dim=128,
    ffn_dim=13824,
    num_layers=40,
    text_dim=4096,
    **TRANSFORMER_COMMON,
)
LTX_VIDEO_2B = dict(
    in_channels=128,
    out_channels=128,
    num_attention_heads=32,
    attention_head_dim=64,
    cross_attention_dim=2048,
    num_layers=28,
    caption_channels=4096,
)
UMT5_XXL = dict(
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
)
