"""Constrained decoding that guarantees the memorizer output format.

Every generated row ends up as

    <think>{free thoughts}</think>\\n\\n{"description": "{text}"}<|im_end|>

where the thoughts contain no '<' (so '</think>' appears exactly once) and the description is a
non-empty, non-blank run of tokens without '"', '\\', '<', control characters or added tokens, so the
JSON always parses. The model still chooses every free token; the processor only removes choices, and
ends a description that repeats one of its own sentences (a greedy decoder that loops says nothing new).
The model ends its description the way it was trained to: with any token that closes the string (`."`,
`"` or `"}`, which is how the tokenizer splits `bench."}`); the closing brace and end-of-turn then follow.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
DESCRIPTION_PREFIX = '\n\n{"description": "'
DESCRIPTION_CLOSE = '"}'


@dataclass(frozen=True)
class VocabMasks:
    """Boolean masks over token ids, True = banned (ids beyond the tokenizer are always banned)."""

    think: torch.Tensor  # (V,) banned while thinking: added tokens except </think>, text with '<'
    description: torch.Tensor  # (V,) banned in the description: added tokens, '"', '\\', '<', controls
    blank: torch.Tensor  # (V,) whitespace-only text: banned as the first description token
    lengths: torch.Tensor  # (V,) int64 characters of each token's text
    sentence_end: torch.Tensor  # (V,) the token's text ends a sentence ('.', '!' or '?', then spaces)
    closing: torch.Tensor  # (V,) text that may end a description: allowed characters, then '"' (and '}')


_MASK_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Characters a JSON string cannot hold unescaped ('"', '\\', C0 controls) plus '<' (keeps '</think>' unique)
# and the other Unicode control characters (DEL, C1).
_DESCRIPTION_BANNED = re.compile(r'["\\<\x00-\x1f\x7f-\x9f]')
_CLOSING = re.compile(r'[^"\\<\x00-\x1f\x7f-\x9f]*"\}?')


def _token_texts(tokenizer) -> list[str]:
    """The decoded text of every token id of `tokenizer`, one id at a time."""
    ids = [[i] for i in range(len(tokenizer))]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the Rust batch decoder is ~5x faster than batch_decode
        return backend.decode_batch(ids, skip_special_tokens=False)
    return tokenizer.batch_decode(ids, skip_special_tokens=False)


def vocab_masks(tokenizer, vocab_size: int, device: str | torch.device = "cpu") -> VocabMasks:
    """Masks for a model with `vocab_size` logits on `device`; computed once per tokenizer, then cached."""
    per_tokenizer = _MASK_CACHE.setdefault(tokenizer, {})
    key = (vocab_size, str(torch.device(device)))
    if key in per_tokenizer:
        return per_tokenizer[key]
    if key[1] != "cpu":
        cpu = vocab_masks(tokenizer, vocab_size)
        per_tokenizer[key] = VocabMasks(**{name: mask.to(device) for name, mask in vars(cpu).items()})
        return per_tokenizer[key]
    if vocab_size < len(tokenizer):
        raise ValueError(f"model vocab {vocab_size} is smaller than the tokenizer's {len(tokenizer)} ids")

    texts = _token_texts(tokenizer)
    added = set(tokenizer.added_tokens_decoder)
    think_close = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    unused = [True] * (vocab_size - len(texts))  # embedding rows no token maps to
    think = [i in added or "<" in text for i, text in enumerate(texts)]
    think[think_close] = False
    description = [i in added or _DESCRIPTION_BANNED.search(text) is not None for i, text in enumerate(texts)]
    blank = [not text.strip() for text in texts]
    masks = VocabMasks(
        think=torch.tensor(think + unused),
        description=torch.tensor(description + unused),
        blank=torch.tensor(blank + [False] * len(unused)),
        lengths=torch.tensor([len(text) for text in texts] + [0] * len(unused)),
        sentence_end=torch.tensor([text.rstrip().endswith((".", "!", "?")) for text in texts] + [False] * len(unused)),
        closing=torch.tensor([i not in added and _CLOSING.fullmatch(text) is not None for i, text in enumerate(texts)]
                             + [False] * len(unused)),
    )
    per_tokenizer[key] = masks
    return masks


@dataclass
class _Row:
    """Decoding state of one batch row."""

    phase: str  # "think" | "description" | "done"
    queue: list[int] = field(default_factory=list)  # token ids still to force, in order
    count: int = 0  # free tokens generated in the current phase
    chars: int = 0  # characters of the description so far
    sentence: list[int] = field(default_factory=list)  # tokens of the description's current sentence
    sentences: set[str] = field(default_factory=set)  # its finished sentences (decoded, stripped)
    repeated: bool = False  # the last finished sentence was said before: end the description


class FormatEnforcer(LogitsProcessor):
    """Forces `<think>..</think>\\n\\n{"description": ".."}` + end-of-turn on every batch row.

    Phases per row: think freely (at most `max_thinking_tokens`, then `</think>` is forced), the
    forced description prefix, the description (at most `max_description_tokens`; the model ends it
    by choosing end-of-turn, whose probability is moved onto the closing `"}`, and it ends when a sentence
    repeats an earlier one of it), then `"}` and the end-of-turn token. Use a fresh instance per
    `generate()` call; the vocabulary masks are shared.

    Args:
        tokenizer: the model's tokenizer (all ids are looked up from it).
        vocab_size: number of logits the model produces (>= len(tokenizer)).
        max_thinking_tokens: free thinking tokens before `</think>` is forced.
        max_description_tokens: description tokens before the closing quote is forced (>= 1).
        max_description_chars: if set, the description also stays within this many characters.
        think_prefilled: the prompt already ends with `<think>\\n`; otherwise it is forced first.
        eos_token_ids: ids that mean end-of-turn to the model (default: the tokenizer's eos).
        device: device of the scores.
    """

    def __init__(
        self,
        tokenizer,
        vocab_size: int,
        max_thinking_tokens: int,
        max_description_tokens: int,
        max_description_chars: int | None = None,
        think_prefilled: bool = True,
        eos_token_ids: list[int] | None = None,
        device: str | torch.device = "cpu",
    ):
        if max_thinking_tokens < 0 or max_description_tokens < 1:
            raise ValueError("need max_thinking_tokens >= 0 and max_description_tokens >= 1")
        if max_description_chars is not None and max_description_chars < 1:
            raise ValueError("max_description_chars must be >= 1")
        self.masks = vocab_masks(tokenizer, vocab_size, device)
        self.tokenizer = tokenizer
        self.max_thinking_tokens = max_thinking_tokens
        self.max_description_tokens = max_description_tokens
        self.max_description_chars = max_description_chars
        self.think_close = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
        self.end = tokenizer.eos_token_id
        self.eos_ids = sorted(set(eos_token_ids or []) | {self.end})
        self.prefix = tokenizer.encode(DESCRIPTION_PREFIX, add_special_tokens=False)
        self.close = tokenizer.encode(DESCRIPTION_CLOSE, add_special_tokens=False)
        self.brace = tokenizer.encode("}", add_special_tokens=False)
        opening = tokenizer.encode(THINK_OPEN + "\n", add_special_tokens=False)
        self.opening = [] if think_prefilled else opening
        self._rows: list[_Row] | None = None

    @property
    def max_new_tokens(self) -> int:
        """Upper bound of generated tokens per row, end-of-turn included."""
        return (
            len(self.opening)
            + self.max_thinking_tokens
            + 1  # </think>
            + len(self.prefix)
            + self.max_description_tokens
            + len(self.close)
            + 1  # end-of-turn
        )

    def _observe(self, row: _Row, token: int) -> None:
        """Advance `row` by the token that was just generated."""
        if row.queue:
            row.queue.pop(0)
        elif row.phase == "think":
            if token == self.think_close:
                row.phase, row.queue, row.count = "description", list(self.prefix), 0
            else:
                row.count += 1
        elif row.phase == "description":
            if self.masks.closing[token]:  # '"}' (close[0]), or e.g. '."' before the brace
                brace_written = self.tokenizer.decode([token]).endswith("}")
                row.phase, row.queue = "done", [*([] if brace_written else self.brace), self.end]
            else:
                row.count += 1
                row.chars += int(self.masks.lengths[token])
                row.sentence.append(token)
                if self.masks.sentence_end[token]:
                    said = self.tokenizer.decode(row.sentence).strip()
                    row.repeated = said in row.sentences
                    row.sentences.add(said)
                    row.sentence = []

    def _constrain(self, row: _Row, scores: torch.Tensor) -> torch.Tensor:
        """Scores (V,) of one row with every disallowed id at -inf."""
        if row.queue:
            return _only(scores, row.queue[0])
        if row.phase == "think":
            if row.count >= self.max_thinking_tokens:
                return _only(scores, self.think_close)
            return scores.masked_fill(self.masks.think, -torch.inf)
        if row.phase == "description":
            if row.count >= self.max_description_tokens or row.repeated:
                return _only(scores, self.close[0])
            # the model may close the string itself once it has written something
            banned = self.masks.description & ~self.masks.closing if row.count else self.masks.description
            if self.max_description_chars is not None:
                chars_left = self.max_description_chars - row.chars
                if chars_left <= 0:
                    return _only(scores, self.close[0])
                banned = banned | (self.masks.lengths > chars_left)
            if row.count == 0:
                return scores.masked_fill(banned | self.masks.blank, -torch.inf)
            out = scores.masked_fill(banned, -torch.inf)
            # The model may end the description: its end-of-turn mass goes to the closing quote.
            ending = torch.cat([scores[self.eos_ids], scores[self.close[0]].reshape(1)])
            out[self.close[0]] = torch.logsumexp(ending, dim=0)
            return out
        return _only(scores, self.end)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, prompt + generated so far); scores: (B, V)
        if self._rows is None:  # first step: nothing generated yet
            self._rows = [_Row("think", list(self.opening)) for _ in range(input_ids.shape[0])]
        else:
            for row, token in zip(self._rows, input_ids[:, -1].tolist()):
                self._observe(row, token)
        return torch.stack([self._constrain(row, row_scores) for row, row_scores in zip(self._rows, scores)])


def _only(scores: torch.Tensor, token: int) -> torch.Tensor:
    """Scores (V,) allowing only `token`."""
    out = torch.full_like(scores, -torch.inf)
    out[token] = 0.0
    return out
