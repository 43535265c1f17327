"""Prompt sources and the sampler: files, shuffle/seed/repeat, groups, rank split (in-process and
with two real torch.distributed gloo processes), and the shipped World-R1 prompt sets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from worldr1_core.prompts import (
    PromptError,
    PromptSampler,
    PromptSource,
    prompts_from_arg,
    read_prompt_file,
)
from worldr1_core.reward_serving.process import free_port
from worldr1_core.sections import PromptSourceSection

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, n: int, header: bool = True) -> Path:
    lines = ["# World-R1 style prompts", ""] if header else []
    for i in range(n):
        lines.append(f"  Camera push in. scene number {i}  ")
        if i % 3 == 0:
            lines += ["", "   # an indented comment"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _section(path: Path, **kw) -> PromptSourceSection:
    return PromptSourceSection(path=str(path), **kw)


def test_file_reading_skips_comments_and_blank_lines(tmp_path):
    f = _write(tmp_path / "p.txt", 7)
    prompts = read_prompt_file(f)
    assert prompts == [f"Camera push in. scene number {i}" for i in range(7)]


def test_missing_file_error_names_the_config_key(tmp_path):
    with pytest.raises(
        PromptError, match=r"prompts\.train\.path: prompt file .*nope\.txt.* not found"
    ):
        PromptSource("train", _section(tmp_path / "nope.txt"))


def test_file_with_only_comments_is_an_error(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("# nothing\n\n   \n", encoding="utf-8")
    with pytest.raises(PromptError, match=r"prompts\.dyn: no prompts"):
        PromptSource("dyn", _section(f))


def test_shuffle_is_a_seeded_permutation_per_epoch(tmp_path):
    f = _write(tmp_path / "p.txt", 20)
    src = PromptSource("train", _section(f, shuffle=True, seed=3))
    epoch0 = [src.index(i) for i in range(20)]
    epoch1 = [src.index(i) for i in range(20, 40)]
    assert sorted(epoch0) == list(range(20)) and sorted(epoch1) == list(range(20))
    assert epoch0 != list(range(20)) and epoch0 != epoch1  # shuffled, reshuffled per epoch
    same = PromptSource("train", _section(f, shuffle=True, seed=3))
    other = PromptSource("train", _section(f, shuffle=True, seed=4))
    assert [same.index(i) for i in range(20)] == epoch0
    assert [other.index(i) for i in range(20)] != epoch0
    plain = PromptSource("train", _section(f, shuffle=False))
    assert [plain.index(i) for i in range(45)] == [i % 20 for i in range(45)]


def test_no_repeat_stops_after_one_epoch(tmp_path):
    f = _write(tmp_path / "p.txt", 4)
    sampler = PromptSampler({"test": _section(f, repeat=False)}, group_size=1, prompts_per_step=2)
    assert len(sampler.sample("test", 0)) == 2 and len(sampler.sample("test", 1)) == 2
    with pytest.raises(PromptError, match=r"prompts\.test: all 4 prompts used and repeat = false"):
        sampler.sample("test", 2)


def test_groups_share_one_prompt(tmp_path):
    f = _write(tmp_path / "p.txt", 10)
    sampler = PromptSampler({"train": _section(f)}, group_size=4, prompts_per_step=3)
    batch = sampler.sample("train", 5)
    assert len(batch) == 12
    groups = [batch[i : i + 4] for i in range(0, 12, 4)]
    for g in groups:
        assert len({p.text for p in g}) == 1 and len({p.index for p in g}) == 1
        assert all(p.source == "train" for p in g)
    assert len({g[0].text for g in groups}) == 3  # distinct prompts in one step


def _rank_samples(sources, world_size, steps, group_size=2, prompts_per_step=2):
    samplers = [
        PromptSampler(
            sources,
            group_size=group_size,
            prompts_per_step=prompts_per_step,
            rank=r,
            world_size=world_size,
        )
        for r in range(world_size)
    ]
    return {
        (r, s): [p.index for p in samplers[r].sample("train", s)]
        for r in range(world_size)
        for s in range(steps)
    }


def test_two_ranks_split_distinct_prompts_in_process(tmp_path):
    f = _write(tmp_path / "p.txt", 12)
    sources = {"train": _section(f, seed=7)}
    got = _rank_samples(
        sources, world_size=2, steps=3
    )  # 3 steps x 2 ranks x 2 prompts = 12 = one epoch
    for s in range(3):
        r0, r1 = set(got[(0, s)]), set(got[(1, s)])
        assert len(r0) == 2 and len(r1) == 2 and not r0 & r1  # each rank: its own distinct prompts
    per_epoch = Counter(i for (r, s), idx in got.items() for i in set(idx))
    assert sorted(per_epoch) == list(range(12)) and set(per_epoch.values()) == {1}
    # the two ranks together draw exactly what one process with twice the prompts per step draws
    single = _rank_samples(sources, world_size=1, steps=3, prompts_per_step=4)
    for s in range(3):
        assert got[(0, s)] + got[(1, s)] == single[(0, s)]


def test_sampling_depends_only_on_step(tmp_path):
    f = _write(tmp_path / "p.txt", 9)
    a = PromptSampler(
        {"train": _section(f)}, group_size=2, prompts_per_step=2, rank=1, world_size=2
    )
    b = PromptSampler(
        {"train": _section(f)}, group_size=2, prompts_per_step=2, rank=1, world_size=2
    )
    later = [p.text for p in a.sample("train", 6)]
    for s in range(6):
        b.sample("train", s)
    assert [p.text for p in b.sample("train", 6)] == later  # resume draws what a full run draws


def test_bad_sampler_arguments(tmp_path):
    f = _write(tmp_path / "p.txt", 3)
    with pytest.raises(PromptError, match="rank 2"):
        PromptSampler(
            {"train": _section(f)}, group_size=1, prompts_per_step=1, rank=2, world_size=2
        )
    with pytest.raises(PromptError, match="unknown prompt source 'dynamic'"):
        PromptSampler({"train": _section(f)}, group_size=1, prompts_per_step=1).sample("dynamic", 0)


_WORKER = textwrap.dedent(
    """
    import json, sys
    import torch.distributed as dist
    from worldr1_core.prompts import PromptSampler
    from worldr1_core.sections import PromptSourceSection
    rank, world, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    sampler = PromptSampler({"train": PromptSourceSection(path=path, seed=11)}, group_size=3,
                            prompts_per_step=2, rank=dist.get_rank(), world_size=dist.get_world_size())
    mine = [[p.index for p in sampler.sample("train", s)] for s in range(4)]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        print("RESULT " + json.dumps(gathered))
    dist.destroy_process_group()
    """
)


def test_two_real_gloo_processes_split_prompts(tmp_path):
    f = _write(tmp_path / "p.txt", 16)
    script = tmp_path / "worker.py"
    script.write_text(_WORKER, encoding="utf-8")
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), "2", port, str(f)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    import json

    line = next(s for s in outs[0][0].splitlines() if s.startswith("RESULT "))
    per_rank = json.loads(line[len("RESULT ") :])  # [rank][step][sample]
    for step in range(4):
        r0, r1 = per_rank[0][step], per_rank[1][step]
        for samples in (r0, r1):
            assert len(samples) == 6
            assert (
                samples[0:3] == [samples[0]] * 3 and samples[3:6] == [samples[3]] * 3
            )  # groups of 3
        assert not set(r0) & set(r1)  # distinct prompts on the two ranks
    # same as the in-process simulation of the two ranks
    sim = _rank_samples({"train": _section(f, seed=11)}, world_size=2, steps=4, group_size=3)
    assert per_rank == [[sim[(r, s)] for s in range(4)] for r in range(2)]


@pytest.mark.parametrize("subdir", ["final", "enhanced"])
@pytest.mark.parametrize("split", ["train", "test", "dynamic"])
def test_shipped_prompt_sets_load(subdir, split):
    src = PromptSource(split, PromptSourceSection(path=f"data/{subdir}/{split}.txt"))
    assert len(src) >= 40
    assert all(p and not p.startswith("#") for p in src.prompts)
    assert "MIT License" in (REPO / "data" / "LICENSE").read_text()


def test_prompts_argument_is_file_or_text(tmp_path):
    f = _write(tmp_path / "p.txt", 3)
    assert len(prompts_from_arg(str(f))) == 3
    assert prompts_from_arg("Camera orbit left. A red car.") == ["Camera orbit left. A red car."]
    with pytest.raises(PromptError, match="not found"):
        prompts_from_arg(str(tmp_path / "typo.txt"))
