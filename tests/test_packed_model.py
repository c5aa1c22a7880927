"""The shipped checkpoint's packed form: a trained policy packed to a few megabytes and expanded again reads
and writes like the original; bad files are refused with a clear error; the default model is expanded once."""

import json

import pytest
import torch
from safetensors.torch import save_file

from taskmem_nodes.models.packed import PROVENANCE_FILE, ensure_default_model, is_unpacked_from, pack, unpack
from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer
from taskmem_nodes.models.transformers_backend import TransformersBackend, TransformersBackendConfig
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import stream_examples
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.vocab import prompt_vocabulary, training_vocabulary

SHORT = WorldConfig(seed=3, duration_s=60.0)


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, tmp_path_factory):
    """A tiny policy after a few updates (so no weight is its initial value), saved as a checkpoint."""
    allowed = training_vocabulary(build_qwen_tokenizer(), WorldConfig(), worlds=2)
    policy = RestrictedPolicy.load(tiny_checkpoint, allowed, frames_per_clip=2)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for example in list(stream_examples(World(SHORT), frames_per_clip=2))[:4]:
        optimizer.zero_grad()
        policy.loss(policy.encode(example.request, example.target)).backward()
        optimizer.step()
        policy.write_back()
    path = tmp_path_factory.mktemp("trained") / "policy"
    policy.save(path)
    return path, policy


def test_pack_and_unpack_keep_the_policy(trained, tmp_path):
    path, policy = trained
    rows = set(policy.allowed.tolist()) | set(prompt_vocabulary(policy.processor, SHORT, worlds=1))
    figures = pack(path, tmp_path / "packed.safetensors", rows)
    checkpoint_bytes = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    assert figures["bytes"] < checkpoint_bytes / 10 and figures["embedding_rows"] == len(rows)

    unpacked = unpack(tmp_path / "packed.safetensors", tmp_path / "unpacked")
    assert is_unpacked_from(unpacked, tmp_path / "packed.safetensors")
    from typer.testing import CliRunner

    from taskmem_nodes.cli import app

    by_cli = CliRunner().invoke(app, ["model", "unpack", "--packed", str(tmp_path / "packed.safetensors"),
                                      "--out", str(tmp_path / "by-cli")])
    assert by_cli.exit_code == 0 and is_unpacked_from(tmp_path / "by-cli", tmp_path / "packed.safetensors")
    refused = CliRunner().invoke(app, ["model", "unpack", "--packed", str(tmp_path / "missing.safetensors"),
                                       "--out", str(tmp_path / "none")])
    assert refused.exit_code == 2 and not (tmp_path / "none").exists()
    assert json.loads((unpacked / "taskmem_policy.json").read_text()) == json.loads(
        (path / "taskmem_policy.json").read_text())
    again = RestrictedPolicy.load(unpacked)
    example = list(stream_examples(World(WorldConfig(seed=4, duration_s=60.0)), frames_per_clip=2))[3]
    with torch.no_grad():  # int8 weights: logits within a few hundredths, the same choices
        a = policy.target_logits(policy.encode(example.request, example.target))
        b = again.target_logits(again.encode(example.request, example.target))
    gap = (a - b).abs().max()
    top = a.topk(2, dim=1).values
    decided = top[:, 0] - top[:, 1] > 2 * gap  # only a near-tie can change its choice
    assert gap < 0.1 and decided.float().mean() > 0.5
    assert torch.equal(a.argmax(1)[decided], b.argmax(1)[decided])

    outputs = []
    for checkpoint in (path, unpacked):  # greedy memories of the two checkpoints through the inference backend
        backend = TransformersBackend(TransformersBackendConfig(str(checkpoint), max_thinking_tokens=8,
                                                                max_description_tokens=24))
        backend.load()
        outputs.append(backend.generate(example.request).text)
    assert outputs[0] == outputs[1]


def test_bad_packed_files_are_refused(tmp_path):
    save_file({"x": torch.zeros(2)}, tmp_path / "other.safetensors", metadata={"format": "something else"})
    with pytest.raises(ValueError, match="not a packed TaskMem checkpoint"):
        unpack(tmp_path / "other.safetensors", tmp_path / "out")
    (tmp_path / "truncated.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="unreadable packed checkpoint"):
        unpack(tmp_path / "truncated.safetensors", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_default_model_expands_once_and_refreshes_when_the_shipped_file_changes(trained, tmp_path, monkeypatch):
    path, policy = trained
    shipped = tmp_path / "shipped.safetensors"
    pack(path, shipped, policy.allowed.tolist())
    monkeypatch.delenv("TASKMEM_MODEL", raising=False)
    monkeypatch.setenv("TASKMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("taskmem_nodes.paths.shipped_model_file", lambda: shipped)
    target = ensure_default_model()
    stamp = (target / PROVENANCE_FILE).stat().st_mtime_ns
    assert ensure_default_model() == target and (target / PROVENANCE_FILE).stat().st_mtime_ns == stamp
    pack(path, shipped, policy.allowed.tolist()[:-1])  # a new shipped file: expanded again
    assert not is_unpacked_from(target, shipped)
    ensure_default_model()
    assert is_unpacked_from(target, shipped)
