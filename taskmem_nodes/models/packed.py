"""The shipped TaskMem checkpoint in a few megabytes, and its expansion into a standard Qwen3-VL directory.

A trained tiny policy is ~175 MB on disk, 90 % of it the 151,936-row embedding matrix of the Qwen vocabulary,
of which training only ever reads a few hundred rows. The packed file keeps:
- the rows of the token ids the policy was trained with (its allowed ids and every id of its prompts), fp16;
- every other weight, matrices as int8 with one fp16 scale per row, vectors as fp16;
- the checkpoint's small text files (model, generation and processor configs, chat template, policy spec).
`unpack` rebuilds the directory `transformers` loads: the other embedding rows are drawn from a seeded normal
(they never occur in the policy's inputs), `tokenizer.json` comes from the offline Qwen tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from taskmem_nodes.models.policy_spec import PolicySpec

EMBEDDING = "model.language_model.embed_tokens.weight"
FORMAT = "taskmem-packed-1"
PROVENANCE_FILE = "taskmem_packed.json"
TOKENIZER_FILES = ("tokenizer.json",)  # rebuilt from the offline Qwen tokenizer
QUANTIZE_MIN_ELEMENTS = 4096  # smaller matrices (and every vector) stay fp16
_ROW_SEED = 0


def _checkpoint_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{checkpoint}: no *.safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_file(file))
    return weights


def pack(checkpoint: str | Path, out_file: str | Path, row_ids: Iterable[int]) -> dict:
    """Write the packed form of `checkpoint` keeping the embedding rows `row_ids`; returns size figures."""
    checkpoint = Path(checkpoint)
    weights = _checkpoint_weights(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    if not config.get("text_config", config).get("tie_word_embeddings", config.get("tie_word_embeddings")):
        raise ValueError("packing needs tied embeddings: the output head is the embedding matrix")
    rows = torch.tensor(sorted(set(row_ids)), dtype=torch.long)
    tensors = {"embedding.row_ids": rows, "embedding.rows": weights.pop(EMBEDDING)[rows].half().contiguous()}
    for name, value in weights.items():
        if value.dim() == 2 and value.numel() >= QUANTIZE_MIN_ELEMENTS:
            scale = value.float().abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            tensors[f"q8.{name}"] = (value.float() / scale).round().clamp(-127, 127).to(torch.int8).contiguous()
            tensors[f"scale.{name}"] = scale.half()
        else:
            tensors[f"f16.{name}"] = value.half().contiguous()
    if not PolicySpec.load(checkpoint).allowed_token_ids:
        raise ValueError(f"{checkpoint} has no policy spec: pack a trained TaskMem policy")
    files = {f.name: f.read_text() for f in sorted(checkpoint.iterdir()) if f.suffix in (".json", ".jinja")
             and f.name not in TOKENIZER_FILES and not f.name.endswith(".index.json")}
    metadata = {"format": FORMAT, "files": json.dumps(files)}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out_file, metadata=metadata)
    return {"bytes": out_file.stat().st_size, "embedding_rows": len(rows),
            "quantized_matrices": sum(k.startswith("q8.") for k in tensors)}


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unpack(packed_file: str | Path, out_dir: str | Path) -> Path:
    """Expand `packed_file` into the checkpoint directory `out_dir` (written aside, then moved in place)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer

    packed_file, out = Path(packed_file), Path(out_dir)
    try:
        with safe_open(packed_file, framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = handle.keys()
            tensors = {key: handle.get_tensor(key) for key in names} if metadata.get("format") == FORMAT else {}
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{packed_file}: unreadable packed checkpoint ({err})") from err
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{packed_file} is not a packed TaskMem checkpoint (format {metadata.get('format')!r})")
    files = json.loads(metadata["files"])
    config_dict = json.loads(files["config.json"])
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    state = {}
    for key, value in tensors.items():
        kind, _, name = key.partition(".")
        if kind == "q8":
            state[name] = value.float() * tensors[f"scale.{name}"].float()
        elif kind == "f16":
            state[name] = value.float()
    text = config.get_text_config()
    generator = torch.Generator().manual_seed(_ROW_SEED)
    embedding = torch.randn(text.vocab_size, text.hidden_size, generator=generator) * text.initializer_range
    embedding[tensors["embedding.row_ids"]] = tensors["embedding.rows"].float()
    state[EMBEDDING] = embedding
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ValueError(f"{packed_file} lacks weights: {missing[:5]}")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        build_qwen_tokenizer().save_pretrained(staging)
        for name, text in files.items():  # the original configs, processor files and policy spec
            (staging / name).write_text(text)
        (staging / PROVENANCE_FILE).write_text(json.dumps({"packed_sha256": file_digest(packed_file)}))
        staging.chmod(0o755)  # mkdtemp makes it private; the checkpoint is for every user of the machine
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)
        try:
            staging.rename(out)
        except OSError:
            if not is_unpacked_from(out, packed_file):  # else a concurrent unpack of the same file finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def is_unpacked_from(checkpoint: str | Path, packed_file: str | Path) -> bool:
    """True when `checkpoint` was expanded from this very packed file (same digest)."""
    provenance = Path(checkpoint) / PROVENANCE_FILE
    if not provenance.is_file():
        return False
    try:
        return json.loads(provenance.read_text()).get("packed_sha256") == file_digest(packed_file)
    except (OSError, ValueError):
        return False


def ensure_default_model() -> Path:
    """The default memorizer checkpoint, expanded from the shipped file when missing or from an older one
    (`$TASKMEM_MODEL` names a checkpoint directory to use as is)."""
    from taskmem_nodes.paths import default_model_dir, shipped_model_file

    target = default_model_dir()
    if os.environ.get("TASKMEM_MODEL"):
        return target
    packed_file = shipped_model_file()
    if not is_unpacked_from(target, packed_file):
        unpack(packed_file, target)
    return target
