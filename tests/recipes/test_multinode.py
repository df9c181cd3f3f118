"""Multi-node, exercised: 2 nodes x 1 process on localhost (torchrun, c10d rendezvous on 127.0.0.1, gloo) for the
tokenizer and the LLM recipe. Both nodes must read disjoint shards (the loader logs each rank's share per epoch)
and end with identical weights (`lmmsn.training.common.check_replicas_agree` logs every rank's state digest)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
READS = re.compile(r"rank (\d)/2 worker 0/1 epoch (\d+) reads shards ([^\n]+)")
DIGEST = re.compile(r"state digest on rank (\d): ([0-9a-f]{64})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(recipe: str, config: str, *overrides: str) -> str:
    """Launch the recipe as two torchrun 'nodes' of one process each; returns both nodes' logs."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    procs = [subprocess.Popen(
        [*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}", "--rdzv-backend=c10d",
         f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=lmmsn-test", recipe, "--config", config, *overrides],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for node in (0, 1)]
    logs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=1500)
            logs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-6000:]
    return "\n".join(logs)


def _check_split_and_agreement(log: str, shards: list[str]) -> None:
    reads: dict[int, dict[int, set[str]]] = {}
    for rank, epoch, names in READS.findall(log):
        reads.setdefault(int(epoch), {})[int(rank)] = {n.strip() for n in names.split(",")}
    assert reads, log[-4000:]
    for epoch, by_rank in reads.items():
        assert set(by_rank) == {0, 1}, (epoch, by_rank)
        assert not by_rank[0] & by_rank[1], f"epoch {epoch}: both nodes read {by_rank[0] & by_rank[1]}"
        assert by_rank[0] | by_rank[1] == set(shards), (epoch, by_rank)
    digests = dict(DIGEST.findall(log))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], digests


def _latent_shards(directory: Path, num_shards: int = 4, clips: int = 8, dim: int = 8) -> list[str]:
    import webdataset as wds

    from lmmsn.data.format import encode_sample
    from lmmsn.tokenizer.latents import synthetic_latents

    directory.mkdir(parents=True)
    names = []
    for shard in range(num_shards):
        name = f"latents-{shard:06d}.tar"
        with wds.TarWriter(str(directory / name)) as sink:
            for i, clip in enumerate(synthetic_latents(clips, 40, dim, seed=shard)):
                meta = {"captions": [f"clip {shard}/{i}"], "dataset": "test", "source_path": f"s{shard}/{i}",
                        "offset_s": 0.0, "duration_s": 1.0, "sample_rate": 0, "num_frames": clip.shape[0]}
                sink.write(encode_sample(f"s{shard}c{i}", meta, latent=clip))
        names.append(name)
    return names


@pytest.mark.slow  # two concurrent torchrun launches: ~1.5 min on 2 cores
def test_tokenizer_recipe_on_two_nodes(tmp_path):
    shards = _latent_shards(tmp_path / "latents")
    out = tmp_path / "run"
    log = _two_nodes("recipes/train_tokenizer.py", "recipes/configs/tokenizer/tiny.yaml",
                     f"data.train_shards={tmp_path / 'latents'}", f"output_dir={out}", "data.batch_size=4",
                     "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=3", "trainer.progress_bar=false",
                     "data.shuffle_buffer=4")
    _check_split_and_agreement(log, shards)
    ckpt = torch.load(out / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6 and set(ckpt["data_position"]) == {0, 1}  # both nodes' stream positions
    assert (out / "export/model.safetensors").is_file()


@pytest.mark.slow  # two concurrent torchrun launches: ~1.5 min on 2 cores
def test_llm_recipe_on_two_nodes(tmp_path):
    from lmmsn.llm.data import write_fixture_shards
    from lmmsn.llm.tiny import write_tiny_base

    write_tiny_base(tmp_path / "base")
    shards = [Path(p).name for p in write_fixture_shards(tmp_path / "codes", "pretrain", num_samples=32, num_shards=4)]
    out = tmp_path / "run"
    log = _two_nodes("recipes/pretrain_llm.py", "recipes/configs/llm/tiny_pretrain.yaml",
                     f"model.base_model={tmp_path / 'base'}", "model.write_tiny_base=false",
                     f"data.train_shards={tmp_path / 'codes'}", "data.write_fixture=false", f"output_dir={out}",
                     "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=3", "trainer.progress_bar=false")
    _check_split_and_agreement(log, shards)
    ckpt = torch.load(out / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    assert (out / "export/adapter/adapter_model.safetensors").is_file()
