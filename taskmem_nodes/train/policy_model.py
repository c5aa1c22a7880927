"""A Qwen3-VL policy for training: the real model classes and processor, with logits over a restricted set of
token ids (the world's vocabulary) instead of all 151,936. With tied embeddings the head is the embedding
matrix, so the restricted logits are exactly the full model's logits on those ids; the checkpoint stays a
standard Qwen3-VL, and inference masks decoding to the same ids (its `PolicySpec`).

Only the allowed rows of the 151,936-row embedding are trained (a small table written back into the matrix
after every update and before saving); the other rows stay as initialised. Training the whole matrix made
the backward pass and AdamW ~10x slower for rows no target ever uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from taskmem_nodes.models.policy_spec import PolicySpec
from taskmem_nodes.models.transformers_backend import prepare_inputs
from taskmem_nodes.policy import PolicyRequest

THINK_PREFILL = "<think>\n"  # the chat template opens the assistant turn with it
END_OF_TURN = "<|im_end|>"


class RowTrainedEmbedding(torch.nn.Module):
    """The model's token embedding with a trainable copy of some rows; the full matrix stays frozen."""

    def __init__(self, base: torch.nn.Embedding, rows: torch.Tensor):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.row_ids = rows
        self.rows = torch.nn.Parameter(base.weight.detach()[rows].clone())
        self._position = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        self._position[rows] = torch.arange(len(rows))

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        position = self._position[input_ids]
        trained = self.rows[position.clamp(min=0)]
        return torch.where((position >= 0)[..., None], trained, self.base(input_ids))

    def write_back(self) -> None:
        """Copy the trained rows into the full matrix (and so into the tied output head)."""
        with torch.no_grad():
            self.base.weight[self.row_ids] = self.rows.to(self.base.weight.dtype)


@dataclass
class Sequence:
    """One tokenized training sequence: the model inputs, and the target positions with their labels."""

    inputs: dict  # processor outputs with the target appended to input_ids
    prompt_tokens: int
    labels: torch.Tensor  # (n_target,) indices into the allowed ids


class RestrictedPolicy:
    """A Qwen3-VL model and processor whose training loss only spans `allowed_ids`."""

    def __init__(self, model, processor, allowed_ids: list[int], frames_per_clip: int = 0):
        if not model.config.get_text_config().tie_word_embeddings:
            raise ValueError("restricted logits need tied input and output embeddings")
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.allowed = torch.tensor(sorted(allowed_ids))
        self.frames_per_clip = frames_per_clip
        self._position = torch.full((model.config.get_text_config().vocab_size,), -1, dtype=torch.long)
        self._position[self.allowed] = torch.arange(len(self.allowed))
        self.embedding = RowTrainedEmbedding(model.get_input_embeddings(), self.allowed)
        model.set_input_embeddings(self.embedding)

    def parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer trains: the allowed embedding rows and every other weight of the model."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def write_back(self) -> None:
        """Make the full model (its output head, `generate`) see the trained rows; call after each update."""
        self.embedding.write_back()

    @classmethod
    def load(cls, path: str | Path, allowed_ids: list[int] | None = None,
             frames_per_clip: int | None = None) -> RestrictedPolicy:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(path)
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32, local_files_only=True)
        spec = PolicySpec.load(path)
        allowed = allowed_ids if allowed_ids is not None else spec.allowed_token_ids
        if not allowed:
            raise ValueError(f"{path} has no allowed token ids; pass the training vocabulary")
        frames = spec.frames_per_clip if frames_per_clip is None else frames_per_clip
        return cls(model, processor, list(allowed), frames)

    def save(self, path: str | Path) -> None:
        """A standard checkpoint directory plus the policy spec (allowed ids, frames per clip)."""
        path = Path(path)
        self.write_back()
        self.model.set_input_embeddings(self.embedding.base)  # a standard Qwen3-VL on disk
        try:
            self.model.save_pretrained(path)
        finally:
            self.model.set_input_embeddings(self.embedding)
        self.processor.save_pretrained(path)
        self.processor.image_processor.save_pretrained(path)  # the per-processor files other loaders look for
        self.processor.video_processor.save_pretrained(path)
        PolicySpec(tuple(self.allowed.tolist()), self.frames_per_clip).save(path)

    def tokens_per_group(self, sequence: Sequence) -> int:
        """Merged vision tokens of one temporal group (one clip at two frames per clip)."""
        _, h, w = sequence.inputs["video_grid_thw"][0].tolist()
        merge = self.model.config.vision_config.spatial_merge_size
        return (h // merge) * (w // merge)

    def encode(self, request: PolicyRequest, target: str) -> Sequence:
        """The prompt of `request` (exactly as inference builds it) followed by `target` and end-of-turn."""
        if target.startswith(THINK_PREFILL):  # the chat template already opened the thinking block
            target = target[len(THINK_PREFILL):]
        return self.encode_ids(request, torch.tensor(self.tokenizer.encode(target + END_OF_TURN,
                                                                           add_special_tokens=False)))

    def output_text(self, ids: torch.Tensor) -> str:
        """The whole output of generated `ids`, the prefilled `<think>` included (what `parse_output` reads)."""
        return THINK_PREFILL + self.tokenizer.decode(ids, skip_special_tokens=True)

    def encode_ids(self, request: PolicyRequest, target_ids: torch.Tensor) -> Sequence:
        """The prompt of `request` followed by the token ids of an answer (e.g. a sampled rollout)."""
        _, inputs = prepare_inputs(self.processor, request)
        labels = self._position[target_ids]
        if (labels < 0).any():
            unknown = self.tokenizer.decode(target_ids[labels < 0])
            raise ValueError(f"target uses tokens outside the allowed ids: {unknown!r}")
        prompt_tokens = inputs["input_ids"].shape[1]
        inputs["input_ids"] = torch.cat([inputs["input_ids"], target_ids[None]], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        for key in ("mm_token_type_ids", "token_type_ids"):  # per-token modality: the answer is text (0)
            if key in inputs:
                inputs[key] = torch.cat([inputs[key], torch.zeros_like(target_ids)[None]], dim=1)
        return Sequence(dict(inputs), prompt_tokens, labels)

    def see(self, sequence: Sequence) -> torch.Tensor:
        """The vision tower alone on the sequence's video: its merged tokens (what the cell probe reads)."""
        return self.model.model.visual(sequence.inputs["pixel_values_videos"],
                                       grid_thw=sequence.inputs["video_grid_thw"]).pooler_output

    def target_logits(self, sequence: Sequence) -> torch.Tensor:
        """(n_target, n_allowed) logits at the positions that predict the target tokens."""
        return self.forward(sequence)[0]

    def forward(self, sequence: Sequence,
                attention_layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The target logits and, when `attention_layer` is given, that decoder layer's attention weights
        (heads, seq, seq); they need eager attention (`set_attn_implementation("eager")`)."""
        out = self.model.model(**sequence.inputs, output_attentions=attention_layer is not None)
        hidden = out.last_hidden_state[0, sequence.prompt_tokens - 1: -1]  # (n_target, hidden)
        attention = out.attentions[attention_layer][0] if attention_layer is not None else None
        return hidden @ self.embedding.rows.T, attention  # the tied head's allowed rows

    def loss(self, sequence: Sequence, start: int = 0) -> torch.Tensor:
        """Mean cross-entropy of the target tokens from target token `start` on."""
        return torch.nn.functional.cross_entropy(self.target_logits(sequence)[start:], sequence.labels[start:])

    def answer_start(self, target: str) -> int:
        """The target token the answer (the JSON after the thinking) of the output `target` starts at."""
        thinking = target[len(THINK_PREFILL):] if target.startswith(THINK_PREFILL) else target
        return len(self.tokenizer.encode(thinking[: thinking.index("{")], add_special_tokens=False))

    def token_logprobs(self, sequence: Sequence) -> torch.Tensor:
        """Each target token's log-probability (n_target,)."""
        logprobs = torch.log_softmax(self.target_logits(sequence), dim=-1)
        return logprobs.gather(1, sequence.labels[:, None])[:, 0]

    def sequence_logprob(self, sequence: Sequence, start: int = 0) -> torch.Tensor:
        """Sum of the target tokens' log-probabilities from target token `start` on (for GSPO and DPO)."""
        return self.token_logprobs(sequence)[start:].sum()


def inference_decoding(policy: RestrictedPolicy, settings: dict, max_new_tokens: int) -> tuple[Callable, int]:
    """A fresh-processor factory and the token limit that make candidates decode as the deployed memorizer does
    (its format enforcer and budgets when `enforce_format` is set)."""
    from taskmem_nodes.models.format_enforcer import FormatEnforcer

    if not settings.get("enforce_format"):
        return list, max_new_tokens
    text_config = policy.model.config.get_text_config()

    def processors() -> list:
        return [FormatEnforcer(policy.tokenizer, text_config.vocab_size, settings.get("max_thinking_tokens", 128),
                               settings.get("max_description_tokens", 200),
                               eos_token_ids=[policy.tokenizer.convert_tokens_to_ids("<|im_end|>")])]

    return processors, processors()[0].max_new_tokens
