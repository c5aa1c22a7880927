"""Build a tiny, randomly initialised Qwen3-VL checkpoint for tests and smoke runs.

The directory is a standard transformers checkpoint (config.json, model.safetensors, tokenizer files,
chat template, image/video processor configs), so everything that loads a real Qwen3-VL loads it.
Only the sizes are tiny; the vocabulary is the full 151,936-id Qwen3-VL one with the real tokenizer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

# Files of a complete checkpoint (the directory is built in a temporary sibling, then renamed).
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
)
VOCAB_SIZE = 151936  # Qwen3-VL's embedding rows (151,669 tokenizer ids + padding)
PATCH_SIZE = 16
SPATIAL_MERGE = 2
TEMPORAL_PATCH = 2
MERGED_PATCH_PIXELS = (PATCH_SIZE * SPATIAL_MERGE) ** 2  # pixels per vision token (32x32)


def is_complete(path: str | Path) -> bool:
    """True when `path` holds every file of a checkpoint built by `build_tiny_checkpoint`."""
    return all((Path(path) / name).is_file() for name in REQUIRED_FILES)


def tiny_config(
    *,
    text_hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vision_depth: int = 2,
    vision_hidden: int = 64,
    experts: int = 0,
):
    """A `Qwen3VLConfig` with tiny text/vision towers and the real token ids and patch geometry.

    experts > 0 gives the mixture-of-experts family instead (`Qwen3VLMoeConfig`, like Qwen3-VL-30B-A3B):
    every decoder layer routes each token to 2 of `experts` experts.
    """
    from transformers import Qwen3VLConfig, Qwen3VLMoeConfig

    head_dim = text_hidden // heads
    if text_hidden % heads or head_dim % 2:
        raise ValueError(f"text_hidden={text_hidden} must split into {heads} heads of even size")
    # Interleaved M-RoPE splits the head_dim/2 rotary frequencies over (time, height, width).
    half = head_dim // 2
    mrope_section = [half - 2 * (half // 3), half // 3, half // 3]
    text = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": text_hidden,
        "intermediate_size": 3 * text_hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": 32768,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": mrope_section,
            "mrope_interleaved": True,
        },
        "tie_word_embeddings": True,
    }
    vision = {
        "depth": vision_depth,
        "hidden_size": vision_hidden,
        "intermediate_size": 4 * vision_hidden,
        "num_heads": max(1, vision_hidden // 32),
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": SPATIAL_MERGE,
        "temporal_patch_size": TEMPORAL_PATCH,
        "out_hidden_size": text_hidden,
        "num_position_embeddings": 2304,  # 48x48 learned grid, interpolated to any frame size
        # DeepStack taps: every block but the last feeds a merger (indexes must be < depth).
        "deepstack_visual_indexes": list(range(max(vision_depth - 1, 1))),
    }
    if experts:
        text.update(num_local_experts=experts, num_experts_per_tok=2, moe_intermediate_size=text_hidden,
                    decoder_sparse_step=1)
        return Qwen3VLMoeConfig(text_config=text, vision_config=vision, tie_word_embeddings=True)
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True)


def tiny_processor(video_max_pixels: int = 64 * 64, image_max_pixels: int = 128 * 128, cache_dir=None):
    """A `Qwen3VLProcessor` with the real tokenizer and small per-frame pixel budgets.

    Video frames are resized to at most `video_max_pixels` (in 32-px merged patches) whatever the
    number of frames, so a 50-frame window costs 25 temporal groups x a few vision tokens.
    """
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    from taskmem_nodes.models.qwen_tokenizer import CHAT_TEMPLATE, build_qwen_tokenizer

    if video_max_pixels < MERGED_PATCH_PIXELS:
        raise ValueError(f"video_max_pixels must be >= {MERGED_PATCH_PIXELS} (one 32x32 merged patch)")
    geometry = {"patch_size": PATCH_SIZE, "merge_size": SPATIAL_MERGE, "temporal_patch_size": TEMPORAL_PATCH}
    normalize = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": MERGED_PATCH_PIXELS, "longest_edge": image_max_pixels}, **normalize, **geometry
    )
    video_processor = Qwen3VLVideoProcessor(
        # With the per-frame cap each frame gets min(max_video_tokens x 32x32, longest_edge / T)
        # pixels; longest_edge is large so that the token cap always binds.
        size={"shortest_edge": MERGED_PATCH_PIXELS, "longest_edge": video_max_pixels * 1024},
        cap_pixels_per_frame=True,
        max_video_tokens=video_max_pixels // MERGED_PATCH_PIXELS,
        do_sample_frames=False,
        **normalize,
        **geometry,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=build_qwen_tokenizer(cache_dir),
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_checkpoint(
    out_dir: str | Path,
    *,
    text_hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vision_depth: int = 2,
    vision_hidden: int = 64,
    seed: int = 0,
    video_max_pixels: int = 64 * 64,
    experts: int = 0,
) -> Path:
    """Write a random tiny Qwen3-VL checkpoint to `out_dir` (bf16 weights) and return its path.

    Idempotent: an existing complete directory is returned as is (its sizes are not checked).
    """
    import torch
    from transformers import AutoModelForImageTextToText

    out = Path(out_dir)
    if is_complete(out):
        return out
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists but is not a complete checkpoint; remove it first")

    config = tiny_config(
        text_hidden=text_hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        vision_depth=vision_depth,
        vision_hidden=vision_hidden,
        experts=experts,
    )
    processor = tiny_processor(video_max_pixels)
    tokenizer = processor.tokenizer
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).to(torch.bfloat16).eval()
    generation = model.generation_config
    generation.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]  # <|im_end|>, <|endoftext|>
    generation.pad_token_id = tokenizer.pad_token_id
    generation.do_sample = False

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        # Also the per-processor files that other loaders look for.
        processor.image_processor.save_pretrained(staging)  # preprocessor_config.json
        processor.video_processor.save_pretrained(staging)  # video_preprocessor_config.json
        recipe = {"seed": seed, "video_max_pixels": video_max_pixels, "config": config.to_diff_dict()}
        (staging / "taskmem_tiny.json").write_text(json.dumps(recipe, indent=1))
        for item in staging.iterdir():
            item.chmod(0o644)
        staging.chmod(0o755)
        try:
            if out.exists():
                out.rmdir()  # empty, checked above
            staging.rename(out)
        except OSError:
            if not is_complete(out):  # else a concurrent builder finished first: use its checkpoint
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
