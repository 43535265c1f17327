"""A straightforward per-pixel implementation of :func:`noise_warp.warp_noise`.

Written for clarity, not speed: Python loops over pixels, one step of the algorithm at a time.
It draws its random numbers in the same order as the vectorized version, so both give the same
result for the same generator state (up to float summation order). Used by the tests as an
oracle and by ``benchmarks/noise_warp.py`` as the baseline.
"""

from __future__ import annotations

import math

import torch


def _round(v: float) -> int:
    return math.floor(v + 0.5)


def warp_noise_reference(
    noise: torch.Tensor,
    flow: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-pixel reference of :func:`worldr1_plugins.latent_init.noise_warp.warp_noise`."""
    C, H, W = noise.shape
    X = noise.reshape(C, H * W)
    fx = flow[0].float().reshape(-1).tolist()
    fy = flow[1].float().reshape(-1).tolist()
    ok = [True] * (H * W) if valid is None else valid.reshape(-1).tolist()

    # forward edges, by ascending source
    edges: list[tuple[int, int]] = []  # (source, target)
    received = [0] * (H * W)
    has_forward = [False] * (H * W)
    for y in range(H):
        for x in range(W):
            q = y * W + x
            tx, ty = _round(x + fx[q]), _round(y + fy[q])
            if ok[q] and 0 <= tx < W and 0 <= ty < H:
                edges.append((q, ty * W + tx))
                received[ty * W + tx] += 1
                has_forward[q] = True

    # holes: backward edges or fresh noise, by ascending target
    fresh: list[int] = []
    for p in range(H * W):
        if received[p]:
            continue
        x, y = p % W, p // W
        bx, by = _round(x - fx[p]), _round(y - fy[p])
        if 0 <= bx < W and 0 <= by < H and ok[by * W + bx]:
            edges.append((by * W + bx, p))
        else:
            fresh.append(p)

    fan_out = [0] * (H * W)
    inputs = [0] * (H * W)
    for q, p in edges:
        fan_out[q] += 1
        inputs[p] += 1

    # split duplicated sources: pieces X/k + W_e - mean(W), W_e ~ N(0, 1/k)
    split_edges = [e for e, (q, _) in enumerate(edges) if fan_out[q] > 1]
    draws = torch.randn(
        (C, len(split_edges)), generator=generator, device=noise.device, dtype=noise.dtype
    )
    w_of_edge: dict[int, torch.Tensor] = {}
    w_total: dict[int, torch.Tensor] = {}
    for column, e in enumerate(split_edges):
        q = edges[e][0]
        w = draws[:, column] / math.sqrt(fan_out[q])
        w_of_edge[e] = w
        w_total[q] = w_total.get(q, torch.zeros(C, dtype=noise.dtype, device=noise.device)) + w

    out = torch.zeros_like(X)
    variance = [0.0] * (H * W)
    for e, (q, p) in enumerate(edges):
        k = fan_out[q]
        if k == 1 and inputs[p] == 1:
            out[:, p] = X[:, q]
            continue
        piece = X[:, q] if k == 1 else X[:, q] / k + w_of_edge[e] - w_total[q] / k
        out[:, p] += piece
        variance[p] += 1.0 / k
    for p in range(H * W):
        if variance[p] > 0:
            out[:, p] /= math.sqrt(variance[p])
    if fresh:
        draws = torch.randn(
            (C, len(fresh)), generator=generator, device=noise.device, dtype=noise.dtype
        )
        for column, p in enumerate(fresh):
            out[:, p] = draws[:, column]
    return out.reshape(C, H, W)
