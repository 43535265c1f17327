"""Render 3D Gaussians into camera views: gsplat on CUDA, a pure-torch tile splatter elsewhere.

Public entry point (used by the reconstruction and meta-view rewards)::

    colour, alpha = render_gaussians(gaussians, c2w, intrinsics, width, height)
    # colour [V, 3, H, W] in [0, 1] (background composited), alpha [V, 1, H, W]

Both backends implement the same image formation as 3D Gaussian Splatting (Kerbl et al. 2023):

1. world -> camera with ``w2c = inverse(c2w)`` (OpenCV: x right, y down, z forward);
2. EWA projection of each covariance ``Sigma = R S S^T R^T``: ``Sigma2d = J W Sigma W^T J^T``
   with the Jacobian ``J`` of the perspective map at the Gaussian's centre (its ``x/z, y/z`` are
   clamped to 1.3x the field of view, as in 3DGS/gsplat), plus ``eps2d = 0.3`` px^2 of dilation;
3. Gaussians sorted front to back per 16x16 pixel tile and alpha-composited,
   ``alpha_i = min(0.999, o_i exp(-d^T Sigma2d^-1 d / 2))`` (skipped below 1/255), stopping where the
   transmittance would fall below 1e-4. Pixel ``(row i, column j)`` is sampled at ``(j + .5, i + .5)``.

The torch splatter bins (tile, Gaussian) pairs into 4x4-pixel tiles, sorts them by tile and depth,
then walks the depth order in chunks: for every pixel that can still change it gathers the chunk's
Gaussians of its tile (``[pixels, chunk]``), composites them with a cumulative product and carries
the transmittance to the next chunk; chunks start at 16 Gaussians and double. It is not
differentiable (``torch.no_grad``); the rewards only need forward renders.
"""

from __future__ import annotations

import math

import torch

from worldr1_core.types import Gaussians

__all__ = ["render_gaussians", "quat_to_rotmat", "covariances", "sh_colors"]

EPS2D = 0.3  # px^2 added to projected covariances (3DGS low-pass filter)
NEAR_PLANE = 0.01
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
TILE = 16  # gsplat's tile size
TORCH_TILE = 4  # small tiles: per-pixel Gaussians rarely make a pixel opaque early, so every pixel pays for every Gaussian of its tile


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Quaternions ``[N, 4]`` (w, x, y, z; normalised here) -> rotation matrices ``[N, 3, 3]``."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_colors(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """View-dependent colours ``[N, 3]`` of SH coefficients ``sh [N, K, 3]`` (degree <= 3, the
    real basis and sign convention of 3DGS / gsplat) seen along ``dirs [N, 3]`` (camera centre to
    Gaussian, any length): ``max(0, sum_k sh_k Y_k(d) + 0.5)``."""
    k = sh.shape[1]
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    basis = [torch.full_like(x, _SH_C0)]
    if k > 1:
        basis += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if k > 4:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        basis += [
            _SH_C2[0] * xy,
            _SH_C2[1] * yz,
            _SH_C2[2] * (2 * zz - xx - yy),
            _SH_C2[3] * xz,
            _SH_C2[4] * (xx - yy),
        ]
    if k > 9:
        basis += [
            _SH_C3[0] * y * (3 * xx - yy),
            _SH_C3[1] * xy * z,
            _SH_C3[2] * y * (4 * zz - xx - yy),
            _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _SH_C3[4] * x * (4 * zz - xx - yy),
            _SH_C3[5] * z * (xx - yy),
            _SH_C3[6] * x * (xx - 3 * yy),
        ]
    if k not in (1, 4, 9, 16):
        raise ValueError(f"sh_colors: {k} coefficients is not a full degree <= 3 (1, 4, 9 or 16)")
    b = torch.cat(basis, dim=-1)  # [N, K]
    return (torch.einsum("nk,nkc->nc", b, sh.float()) + 0.5).clamp_min(0.0)


def covariances(gaussians: Gaussians) -> torch.Tensor:
    """World-space covariances ``[N, 3, 3] = R diag(s^2) R^T``."""
    r = quat_to_rotmat(gaussians.quats.float())
    rs = r * gaussians.scales.float()[:, None, :]  # R S
    return rs @ rs.transpose(1, 2)


def render_gaussians(
    gaussians: Gaussians,
    c2w: torch.Tensor,
    intrinsics: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``gaussians`` at ``V`` cameras.

    ``c2w [V, 4, 4]`` camera-to-world (OpenCV), ``intrinsics [V, 3, 3]`` in pixels of the
    ``width x height`` output; ``background [3]`` (default black) fills what the Gaussians leave
    transparent. ``backend``: ``"auto"`` (gsplat when the Gaussians are CUDA tensors, else the
    torch splatter), ``"gsplat"`` or ``"torch"``. Returns ``colour [V, 3, H, W]`` and
    ``alpha [V, 1, H, W]`` on the Gaussians' device.
    """
    if c2w.ndim != 3 or tuple(c2w.shape[1:]) != (4, 4):
        raise ValueError(f"render_gaussians: c2w must be [V, 4, 4], got {tuple(c2w.shape)}")
    if tuple(intrinsics.shape) != (c2w.shape[0], 3, 3):
        raise ValueError(
            f"render_gaussians: intrinsics must be [V, 3, 3] = [{c2w.shape[0]}, 3, 3], got {tuple(intrinsics.shape)}"
        )
    device = gaussians.means.device
    bg = (
        torch.zeros(3, device=device)
        if background is None
        else background.to(device).float().reshape(3)
    )
    w2c = torch.linalg.inv(c2w.to(device).double()).float()  # [V, 4, 4]
    k = intrinsics.to(device).float()
    if backend == "auto":
        backend = "gsplat" if device.type == "cuda" else "torch"
    if backend == "gsplat":
        return _render_gsplat(gaussians, w2c, k, width, height, bg)
    if backend == "torch":
        return _render_torch(gaussians, w2c, k, width, height, bg)
    raise ValueError(
        f"render_gaussians: backend must be 'auto', 'gsplat' or 'torch', got {backend!r}"
    )


def _render_gsplat(g: Gaussians, w2c, k, width, height, bg):
    if g.means.device.type != "cuda":
        raise ValueError(
            "render_gaussians(backend='gsplat') needs CUDA tensors; use backend='torch' on CPU"
        )
    from gsplat import rasterization

    v = w2c.shape[0]
    colour, alpha, _ = rasterization(
        g.means.float(),
        g.quats.float(),
        g.scales.float(),
        g.opacities.float(),
        g.colors.float() if g.sh is None else g.sh.float(),
        sh_degree=g.sh_degree,
        viewmats=w2c,
        Ks=k,
        width=width,
        height=height,
        near_plane=NEAR_PLANE,
        eps2d=EPS2D,
        tile_size=TILE,
        backgrounds=bg.expand(v, 3).contiguous(),
        render_mode="RGB",
        packed=False,  # gsplat 1.5.3 checks per-view backgrounds against packed (nnz) shapes and fails
    )  # [V, H, W, 3], [V, H, W, 1]
    return colour.permute(0, 3, 1, 2).clamp(0, 1), alpha.permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- torch splatter


@torch.no_grad()
def _render_torch(g: Gaussians, w2c, k, width, height, bg):
    cov = covariances(g)  # [N, 3, 3]
    colours, alphas = [], []
    for view in range(w2c.shape[0]):
        if g.sh is None:
            rgb = g.colors.float().clamp(0, 1)
        else:  # view-dependent: direction from this camera's centre (-R^T t) to each Gaussian
            centre = -w2c[view, :3, :3].T @ w2c[view, :3, 3]
            rgb = sh_colors(g.sh, g.means.float() - centre)  # >= 0, as gsplat
        c, a = _splat_view(g, cov, w2c[view], k[view], width, height, bg, rgb)
        colours.append(c)
        alphas.append(a)
    return torch.stack(colours), torch.stack(alphas)


def _project(
    g: Gaussians, cov: torch.Tensor, w2c: torch.Tensor, k: torch.Tensor, width: int, height: int
):
    """EWA projection -> centres [N, 2], conics (a, b, c) [N, 3], depth [N], 2D covariances [N, 2, 2]."""
    r, t = w2c[:3, :3], w2c[:3, 3]
    m = g.means.float() @ r.T + t  # [N, 3] camera coordinates
    z = m[:, 2]
    zs = z.clamp_min(NEAR_PLANE)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    # the Jacobian is evaluated at a centre clamped to 1.3x the field of view (3DGS / gsplat)
    lim_x_pos, lim_x_neg = (
        (width - cx) / fx + 0.3 * 0.5 * width / fx,
        cx / fx + 0.3 * 0.5 * width / fx,
    )
    lim_y_pos, lim_y_neg = (
        (height - cy) / fy + 0.3 * 0.5 * height / fy,
        cy / fy + 0.3 * 0.5 * height / fy,
    )
    tx = zs * torch.clamp(m[:, 0] / zs, -lim_x_neg, lim_x_pos)
    ty = zs * torch.clamp(m[:, 1] / zs, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(zs)
    jac = torch.stack([fx / zs, zero, -fx * tx / zs**2, zero, fy / zs, -fy * ty / zs**2], -1).view(
        -1, 2, 3
    )
    jw = jac @ r  # [N, 2, 3]
    cov2d = jw @ cov @ jw.transpose(1, 2) + EPS2D * torch.eye(2, device=m.device)  # [N, 2, 2]
    det = (cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]).clamp_min(1e-10)
    conic = torch.stack([cov2d[:, 1, 1] / det, -cov2d[:, 0, 1] / det, cov2d[:, 0, 0] / det], -1)
    centre = torch.stack([fx * m[:, 0] / zs + cx, fy * m[:, 1] / zs + cy], -1)  # [N, 2]
    return centre, conic, z, cov2d


def _splat_view(
    g: Gaussians, cov, w2c, k, width: int, height: int, bg, rgb, chunk_budget: int = 4_000_000
):
    """One view. Tiles are ``TORCH_TILE`` px square; chunks of Gaussians per tile start at 16 and
    double (opaque tiles usually finish within the first chunks) up to ``chunk_budget`` elements."""
    TILE = TORCH_TILE
    device = g.means.device
    centre, conic, depth, cov2d = _project(g, cov, w2c, k, width, height)
    opac = g.opacities.float().clamp(0, 1)
    # footprint: where o * exp(-sigma) >= 1/255, capped at 3.33 standard deviations (gsplat)
    extent = torch.sqrt(2 * torch.log((opac * 255).clamp_min(1.0))).clamp_max(3.33)  # [N]
    rx = extent * cov2d[:, 0, 0].sqrt()
    ry = extent * cov2d[:, 1, 1].sqrt()
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    visible = (
        (depth > NEAR_PLANE)
        & (opac >= ALPHA_MIN)
        & torch.isfinite(centre).all(-1)
        & (centre[:, 0] + rx > 0)
        & (centre[:, 0] - rx < width)
        & (centre[:, 1] + ry > 0)
        & (centre[:, 1] - ry < height)
    )
    idx = visible.nonzero().squeeze(1)  # [Nv]
    out = bg.view(3, 1, 1).expand(3, height, width).clone()
    trans_img = torch.ones(1, height, width, device=device)
    if idx.numel() == 0:
        return out, 1 - trans_img
    cx_, cy_, rx_, ry_ = centre[idx, 0], centre[idx, 1], rx[idx], ry[idx]
    tx0 = ((cx_ - rx_) / TILE).floor().clamp(0, tiles_x - 1).long()
    tx1 = ((cx_ + rx_) / TILE).floor().clamp(0, tiles_x - 1).long()
    ty0 = ((cy_ - ry_) / TILE).floor().clamp(0, tiles_y - 1).long()
    ty1 = ((cy_ + ry_) / TILE).floor().clamp(0, tiles_y - 1).long()
    nx = tx1 - tx0 + 1
    counts = nx * (ty1 - ty0 + 1)  # tiles touched per Gaussian
    # --- (tile, Gaussian) pairs, sorted by tile then depth
    pair_g = torch.repeat_interleave(torch.arange(idx.numel(), device=device), counts)  # [M]
    first = torch.cumsum(counts, 0) - counts
    r = torch.arange(pair_g.numel(), device=device) - first[pair_g]
    pair_tile = (ty0[pair_g] + r // nx[pair_g]) * tiles_x + tx0[pair_g] + r % nx[pair_g]
    depth_rank = torch.empty_like(idx)
    depth_rank[torch.argsort(depth[idx])] = torch.arange(idx.numel(), device=device)
    order = torch.argsort(pair_tile * idx.numel() + depth_rank[pair_g])
    pair_g, pair_tile = pair_g[order], pair_tile[order]
    n_tiles = tiles_x * tiles_y
    per_tile = torch.bincount(pair_tile, minlength=n_tiles)
    pos = (
        torch.arange(pair_g.numel(), device=device)
        - (torch.cumsum(per_tile, 0) - per_tile)[pair_tile]
    )
    # --- regroup by position-in-tile so that chunk [k0, k0 + K) is a contiguous slice
    order2 = torch.argsort(pos * n_tiles + pair_tile)
    pair_g, pair_tile, pos = pair_g[order2], pair_tile[order2], pos[order2]
    # pixel centres of every tile: [n_tiles, TILE*TILE, 2]
    py, px = torch.meshgrid(
        torch.arange(TILE, device=device), torch.arange(TILE, device=device), indexing="ij"
    )
    local = torch.stack([px.reshape(-1), py.reshape(-1)], -1).float() + 0.5
    tile_origin = (
        torch.stack(
            [
                torch.arange(n_tiles, device=device) % tiles_x,
                torch.arange(n_tiles, device=device) // tiles_x,
            ],
            -1,
        ).float()
        * TILE
    )
    n_pix = TILE * TILE
    trans = torch.ones(n_tiles * n_pix, device=device)  # transmittance per (tile, pixel)
    colour = torch.zeros(n_tiles * n_pix, 3, device=device)
    alive = torch.ones(
        n_tiles, n_pix, dtype=torch.bool, device=device
    )  # pixels that can still change
    # per-Gaussian record gathered once per (pixel, slot): centre x, y, conic a, b, c, opacity, rgb
    packed = torch.cat([centre[idx], conic[idx], opac[idx, None], rgb[idx]], -1)  # [Nv, 9]
    packed = torch.cat([packed, torch.zeros(1, 9, device=device)])  # row -1: empty slot (opacity 0)
    k_max = int(per_tile.max())
    k0, step = 0, 0
    while k0 < k_max:
        busy = alive & (per_tile > k0)[:, None]  # [T, P]
        n_busy = int(busy.sum())
        if n_busy == 0:
            break
        kc = max(8, min(16 * 2**step, 512, chunk_budget // n_busy))
        step += 1
        lo, hi = torch.searchsorted(pos, torch.tensor([k0, k0 + kc], device=device)).tolist()
        # dense [tile, slot] table of this chunk's Gaussians (-1: empty slot)
        slot = torch.full((n_tiles, kc), -1, dtype=torch.long, device=device)
        slot[pair_tile[lo:hi], pos[lo:hi] - k0] = pair_g[lo:hi]
        k0 += kc
        ti, pi = busy.nonzero(as_tuple=True)  # [Q] busy pixels
        flat = ti * n_pix + pi
        rec = packed[slot[ti]]  # [Q, K, 9]
        pix = tile_origin[ti] + local[pi]  # [Q, 2]
        dx = pix[:, 0:1] - rec[..., 0]  # [Q, K]
        dy = pix[:, 1:2] - rec[..., 1]
        sigma = 0.5 * (rec[..., 2] * dx * dx + rec[..., 4] * dy * dy) + rec[..., 3] * dx * dy
        alpha = (rec[..., 5] * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, 0.0)
        t_in = trans[flat]  # [Q]
        incl = t_in[:, None] * torch.cumprod(1 - alpha, -1)  # transmittance after each Gaussian
        alpha = torch.where(incl >= T_MIN, alpha, 0.0)  # 3DGS early stop, exactly (see module doc)
        incl = t_in[:, None] * torch.cumprod(1 - alpha, -1)
        weight = incl / (1 - alpha) * alpha  # transmittance before x alpha (alpha <= 0.999)
        colour[flat] += torch.einsum("qk,qkc->qc", weight, rec[..., 6:9])
        trans[flat] = incl[:, -1]
        alive.view(-1)[flat] = incl[:, -1] >= T_MIN / (1 - ALPHA_MIN)
    colour, trans = colour.view(n_tiles, n_pix, 3), trans.view(n_tiles, n_pix)
    # --- tiles -> image
    img = (
        colour.view(tiles_y, tiles_x, TILE, TILE, 3)
        .permute(4, 0, 2, 1, 3)
        .reshape(3, tiles_y * TILE, tiles_x * TILE)
    )
    tr = (
        trans.view(tiles_y, tiles_x, TILE, TILE)
        .permute(0, 2, 1, 3)
        .reshape(1, tiles_y * TILE, tiles_x * TILE)
    )
    img, tr = img[:, :height, :width], tr[:, :height, :width]
    return (img + tr * bg.view(3, 1, 1)).clamp(0, 1), 1 - tr
