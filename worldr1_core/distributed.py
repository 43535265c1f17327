"""One code path for 1 process, plain data parallel (DDP-style) and DeepSpeed ZeRO-2/3.

The trainer talks to a :class:`Distributed` object only::

    dist = Distributed.from_config(config)           # reads the launcher's env (RANK, WORLD_SIZE ...)
    dist.prepare(module, params, optimizer, accumulation_steps=K, micro_batch=M)
    dist.backward(loss)                              # K times per update
    grad_norm = dist.step()                          # after the K-th: all-reduce/clip/AdamW (or DS's)
    dist.all_gather(tensor)                          # [n, ...] from every rank -> [W * n, ...]
    with dist.gathered(params): ...                  # full LoRA tensors (ZeRO-3 partitions them)

Launchers: ``accelerate launch`` (with ``configs/accelerate/*.yaml``), ``torchrun`` and the
``deepspeed`` launcher all set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``; the process
group is created here (``gloo`` on CPU, ``nccl`` on GPUs, or ``distributed.process_group_backend``).

Backends (``[distributed] backend``):

* ``none``: a single process, ``loss.backward()`` + clip + ``optimizer.step()``.
* ``ddp``: the same, plus an all-reduce (mean) of the trainable gradients before clipping. The
  model is not wrapped in ``DistributedDataParallel``: plugins call their own modules, and the
  trainable (LoRA) gradients are small, so one explicit all-reduce per update is simplest.
* ``deepspeed``: ``deepspeed.initialize`` of the module holding the adapter with a
  ``torch.optim.AdamW`` on the trainable parameters (a DeepSpeed-config optimizer would JIT-build
  ``fused_adam``). The frozen base is partitioned along with it under ZeRO-3; only the adapter
  is trained. The DeepSpeed JSON comes from ``distributed.deepspeed_config``, else accelerate's
  ``ACCELERATE_DEEPSPEED_CONFIG_FILE``, else the shipped ``deepspeed/zero{stage}.json``
  (:mod:`worldr1_core.resources`; ``configs/deepspeed/`` in a checkout); its
  ``"auto"`` batch/accumulation/clipping/precision keys are filled from ``[train]``.
* ``auto``: ``deepspeed`` when launched by ``accelerate launch`` with a DeepSpeed config, by the
  ``deepspeed`` launcher, or with ``distributed.deepspeed_config`` set and several processes;
  ``ddp`` with several processes otherwise (``torchrun``); ``none`` for one process.

Losses handed to :meth:`Distributed.backward` are divided by ``accumulation_steps`` here, on
every backend, so the update is the mean over micro-batches.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .devices import process_device
from .resources import deepspeed_config as shipped_deepspeed_config
from .resources import shipped_counterpart


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "") != "":
            return int(os.environ[name])
    return default


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


class Distributed:
    """Process group, gradient synchronisation and parameter gathering for one backend."""

    def __init__(
        self,
        backend: str = "auto",
        *,
        zero_stage: int = 3,
        deepspeed_config: str = "",
        process_group_backend: str = "auto",
        grad_clip: float = 0.0,
        mixed_precision: str = "no",
    ) -> None:
        self.world_size = _env_int("WORLD_SIZE", default=1)
        self.rank = _env_int("RANK", default=0)
        self.local_rank = _env_int("LOCAL_RANK", default=0)
        self.grad_clip = grad_clip
        self.mixed_precision = mixed_precision
        self.zero_stage = zero_stage
        self.deepspeed_config_path = deepspeed_config
        self.backend = self.resolve_backend(backend, deepspeed_config)
        self.pg_backend = process_group_backend
        if self.pg_backend == "auto":
            self.pg_backend = "nccl" if torch.cuda.is_available() else "gloo"
        self.device = self._pick_device()
        self.engine: Any = None
        self.params: list[torch.nn.Parameter] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.accumulation_steps = 1
        self._micro = 0
        if self.backend != "none":
            self._init_process_group()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: Any) -> Distributed:
        """From a :class:`~worldr1_core.config.RunConfig` (its ``[distributed]`` and ``[train]``)."""
        d, t = config.distributed, config.train
        if t.mixed_precision != "no":
            backend = cls.resolve_backend(d.backend, d.deepspeed_config)
            if backend != "deepspeed":
                from .errors import ConfigError

                raise ConfigError(
                    f"{config.provenance.get('train.mixed_precision') or config.source}: train.mixed_precision = {t.mixed_precision!r} is DeepSpeed-only "
                    f"(this run's backend is {backend!r}); the model's precision is model.dtype. Set "
                    "train.mixed_precision = 'no', or launch with DeepSpeed (docs/launch.md)"
                )
        return cls(
            d.backend,
            zero_stage=d.zero_stage,
            deepspeed_config=d.deepspeed_config,
            process_group_backend=d.process_group_backend,
            grad_clip=t.grad_clip,
            mixed_precision=t.mixed_precision,
        )

    @staticmethod
    def resolve_backend(backend: str, ds_config: str) -> str:
        """The backend ``backend`` ("auto" included) means in this process's launch environment."""
        world_size = _env_int("WORLD_SIZE", default=1)
        if backend == "ddp" and world_size == 1:
            return "none"  # nothing to synchronise
        if backend != "auto":
            return backend
        launched_by_deepspeed = (
            "CROSS_RANK" in os.environ and "LOCAL_SIZE" in os.environ
        )  # `deepspeed` launcher
        if _truthy("ACCELERATE_USE_DEEPSPEED") or (
            world_size > 1 and (ds_config or launched_by_deepspeed)
        ):
            return "deepspeed"
        return "ddp" if world_size > 1 else "none"

    def _pick_device(self) -> torch.device:
        device = process_device()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def _init_process_group(self) -> None:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        os.environ.setdefault("RANK", str(self.rank))
        os.environ.setdefault("WORLD_SIZE", str(self.world_size))
        os.environ.setdefault("LOCAL_RANK", str(self.local_rank))
        if torch.distributed.is_initialized():
            return
        if self.backend == "deepspeed":
            import deepspeed

            deepspeed.init_distributed(
                dist_backend=self.pg_backend, timeout=datetime.timedelta(minutes=30)
            )
        else:
            torch.distributed.init_process_group(
                self.pg_backend,
                rank=self.rank,
                world_size=self.world_size,
                timeout=datetime.timedelta(minutes=30),
            )

    # ------------------------------------------------------------------ properties

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.backend != "none"

    @property
    def zero3(self) -> bool:
        return (
            self.backend == "deepspeed"
            and self.engine is not None
            and self.engine.zero_optimization_stage() == 3
        )

    def describe(self) -> str:
        extra = f" ZeRO-{self.engine.zero_optimization_stage()}" if self.engine is not None else ""
        return f"{self.backend}{extra} rank {self.rank}/{self.world_size} on {self.device}"

    # ------------------------------------------------------------------ DeepSpeed config

    def deepspeed_config(self, micro_batch: int, accumulation_steps: int) -> dict[str, Any]:
        """The DeepSpeed JSON with its ``"auto"`` keys filled (integers, as DeepSpeed wants)."""
        path = self.deepspeed_config_path or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "")
        if path:
            p = Path(path)
            if not p.is_absolute() and not p.exists():
                p = shipped_counterpart(path) or p  # configs/deepspeed/... outside a checkout
        else:
            stage = _env_int("ACCELERATE_DEEPSPEED_ZERO_STAGE", default=self.zero_stage)
            p = shipped_deepspeed_config(stage)
        if not p.is_file():
            raise FileNotFoundError(
                f"distributed.deepspeed_config: DeepSpeed config {str(p)!r} not found"
            )
        cfg: dict[str, Any] = json.loads(p.read_text())
        cfg.pop("train_batch_size", None)  # derived by DeepSpeed from the two below
        cfg["train_micro_batch_size_per_gpu"] = int(max(1, micro_batch))
        cfg["gradient_accumulation_steps"] = int(max(1, accumulation_steps))
        if cfg.get("gradient_clipping", "auto") == "auto":
            cfg["gradient_clipping"] = float(self.grad_clip)
        for key, on in (
            ("bf16", self.mixed_precision == "bf16"),
            ("fp16", self.mixed_precision == "fp16"),
        ):
            section = cfg.setdefault(key, {})
            if section.get("enabled", "auto") == "auto":
                section["enabled"] = on
        cfg.pop("optimizer", None)  # we pass torch AdamW (no fused_adam JIT build)
        cfg.setdefault("zero_allow_untested_optimizer", True)
        cfg.setdefault("steps_per_print", 10**9)
        return cfg

    # ------------------------------------------------------------------ training

    def prepare(
        self,
        module: torch.nn.Module,
        params: list[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        *,
        accumulation_steps: int = 1,
        micro_batch: int = 1,
    ) -> None:
        """Attach the trainable ``params`` (inside ``module``) and their ``optimizer``."""
        self.params = list(params)
        self.optimizer = optimizer
        self.accumulation_steps = max(1, int(accumulation_steps))
        self._micro = 0
        if self.backend == "deepspeed":
            import deepspeed

            config = self.deepspeed_config(micro_batch, self.accumulation_steps)
            self.engine, self.optimizer, _, _ = deepspeed.initialize(
                model=module, optimizer=optimizer, config=config, dist_init_required=False
            )
        elif self.backend == "ddp":
            self.broadcast_parameters(self.params)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradient of ``loss / accumulation_steps``."""
        loss = loss / self.accumulation_steps
        self._micro += 1
        if self.engine is not None:
            self._begin_micro_step()
            self.engine.backward(loss, scale_wrt_gas=False)
            self.engine.step()  # applies the update only at the accumulation boundary
        else:
            loss.backward()

    def _begin_micro_step(self) -> None:
        """What ``engine.forward`` does before each micro-step, for a loss computed by calling the
        module directly (plugins call their own modules, never the engine). Without it ZeRO-3
        never advances its micro-step counter and *overwrites* the gradient partition on every
        backward, so an update with K > 1 backward calls kept only the last one's gradient."""
        from deepspeed.runtime.base_optimizer import ZeROOptimizer

        opt = self.engine.optimizer
        if isinstance(opt, ZeROOptimizer):
            opt.clear_backward_seen_flag()
            opt.set_gradient_accumulation_boundary(self.engine.is_gradient_accumulation_boundary())

    def step(self) -> float:
        """Finish an update after ``accumulation_steps`` backward calls; returns the grad norm
        (before clipping)."""
        if self._micro != self.accumulation_steps:
            raise RuntimeError(
                f"Distributed.step after {self._micro} backward calls; expected accumulation_steps="
                f"{self.accumulation_steps}"
            )
        self._micro = 0
        if self.engine is not None:
            norm = self.engine.get_global_grad_norm()
            return float(norm) if norm is not None else float("nan")
        if self.backend == "ddp":
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
                p.grad.div_(self.world_size)
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if self.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(self.params, self.grad_clip, norm)
        assert self.optimizer is not None, "Distributed.prepare() sets the optimizer"
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else 0.0

    # ------------------------------------------------------------------ collectives

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate ``tensor [n, ...]`` from every rank (equal ``n``) -> ``[W * n, ...]``."""
        if not self.is_distributed:
            return tensor
        t = tensor.contiguous().to(self.device if self.pg_backend == "nccl" else "cpu")
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, t)
        return torch.cat(parts).to(tensor.device)

    def all_reduce_mean(self, values: dict[str, float]) -> dict[str, float]:
        """Mean of scalar metrics over ranks (same keys on every rank). NaN marks a value a rank
        did not measure: it is left out of that key's mean (NaN only if no rank measured it)."""
        if not self.is_distributed or not values:
            return values
        keys = sorted(values)
        v = torch.tensor(
            [values[k] for k in keys],
            dtype=torch.float64,
            device=self.device if self.pg_backend == "nccl" else "cpu",
        )
        finite = torch.isfinite(v)
        t = torch.stack([torch.where(finite, v, torch.zeros_like(v)), finite.double()])  # [2, K]
        torch.distributed.all_reduce(t)
        mean = torch.where(t[1] > 0, t[0] / t[1].clamp_min(1), torch.full_like(t[0], float("nan")))
        return dict(zip(keys, mean.tolist()))

    def broadcast_parameters(self, params: Sequence[torch.Tensor]) -> None:
        if not self.is_distributed:
            return
        with torch.no_grad():
            for p in params:
                torch.distributed.broadcast(p.data, src=0)

    def barrier(self) -> None:
        if self.is_distributed:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def gathered(
        self, params: list[torch.nn.Parameter] | None = None, *, writable: bool = False
    ) -> Iterator[None]:
        """Full (un-partitioned) values of ``params`` (default: the trained ones) on every rank
        inside the block. Collective under ZeRO-3: call it on all ranks. Changes are discarded,
        unless ``writable``: then rank 0's values are partitioned back to every rank on exit."""
        params = self.params if params is None else params
        if self.zero3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if writable else None):
                yield
        else:
            yield

    # ------------------------------------------------------------------ state

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimizer's state dict for a checkpoint (None under DeepSpeed: see ``save_engine``)."""
        if self.engine is not None or self.optimizer is None:
            return None
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        if self.engine is None and self.optimizer is not None:
            self.optimizer.load_state_dict(state)

    def save_engine(self, directory: str | Path, tag: str = "engine") -> None:
        """DeepSpeed's own (sharded) checkpoint of module + optimizer; collective."""
        if self.engine is not None:
            self.engine.save_checkpoint(
                str(directory), tag=tag, save_latest=False, exclude_frozen_parameters=True
            )

    def load_engine(self, directory: str | Path, tag: str = "engine") -> None:
        if self.engine is not None and (Path(directory) / tag).is_dir():
            self.engine.load_checkpoint(str(directory), tag=tag, load_module_strict=False)

    def close(self) -> None:
        """End of the run, on every rank: release the DeepSpeed engine, then the process groups.

        What holds a process group (the engine, ZeRO-3's hooks and optimizer) is released and
        collected while the interpreter is fully alive. Left to interpreter finalization, Gloo's
        worker threads are torn down after Python stopped handing out the GIL, and now and then a
        rank aborts after a complete run ("terminate called without an active exception", -6).
        """
        if not (self.is_distributed and torch.distributed.is_initialized()):
            return
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.destroy()  # removes ZeRO-3's hooks, frees its buffers; not collective
        del engine
        self.optimizer = None
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        gc.collect()
