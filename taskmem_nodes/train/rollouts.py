"""How rollouts are decoded from the policy: freely sampled groups, and groups that follow the greedy output
but for its choices (which statement comes next, whether the memory goes on), shared by Phase One and Two."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import LogitsProcessor

from taskmem_nodes.models.steering import THINK_END
from taskmem_nodes.models.transformers_backend import AllowedTokens, prepare_inputs
from taskmem_nodes.train.policy_model import RestrictedPolicy


def sample_group(policy: RestrictedPolicy, request, group_size: int, temperature: float, max_new_tokens: int,
                 extra_processors: Sequence = ()) -> list[torch.Tensor]:
    """`group_size` rollouts (generated token ids, end-of-turn included) from the current policy, greedy (one)
    at temperature 0; decoding is restricted to the policy's ids, then by `extra_processors` (e.g. the
    inference format enforcer)."""
    from transformers import LogitsProcessorList

    _, inputs = prepare_inputs(policy.processor, request)
    prompt_tokens = inputs["input_ids"].shape[1]
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        output = policy.model.generate(
            **inputs, **({"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0,
                          "num_return_sequences": group_size} if temperature > 0 else {"do_sample": False}),
            max_new_tokens=max_new_tokens,
            logits_processor=LogitsProcessorList([AllowedTokens(policy.allowed), *extra_processors]),
            eos_token_id=eos,
            pad_token_id=eos,
        )
    rollouts = []
    for row in output[:, prompt_tokens:]:
        ends = (row == eos).nonzero()
        rollouts.append(row[: int(ends[0]) + 1] if len(ends) else row)
    return rollouts


def thinking_ids(policy: RestrictedPolicy, ids: torch.Tensor) -> list[int]:
    """The generated ids up to and including `</think>` (all of them when the output never closes its thinking)."""
    think_end = policy.tokenizer.convert_tokens_to_ids(THINK_END)
    ends = (ids == think_end).nonzero()
    return ids[: int(ends[0]) + 1].tolist() if len(ends) else ids.tolist()


class ForcedPrefix(LogitsProcessor):
    """Forces the first generated tokens to be `prefix`, so that sampled rows differ only after it."""

    def __init__(self, prefix: Sequence[int]):
        self.prefix = list(prefix)
        self._prompt_tokens: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._prompt_tokens is None:
            self._prompt_tokens = input_ids.shape[1]
        generated = input_ids.shape[1] - self._prompt_tokens
        if generated >= len(self.prefix):
            return scores
        forced = torch.full_like(scores, -torch.inf)
        forced[:, self.prefix[generated]] = 0.0
        return forced


class SampledChoices(LogitsProcessor):
    """Greedy decoding but for a memory's choices, sampled at `temperature` past the first `skip` generated
    tokens: the token after a statement's full stop (which statement comes next) and, where the greedy token
    ends a statement, whether the memory goes on or closes (only those two tokens). Run with `do_sample` at
    temperature 1 and as the last processor, after those that mask tokens."""

    def __init__(self, full_stop: int, closing_stop: int, temperature: float, skip: int = 0):
        self.full_stop, self.closing_stop = full_stop, closing_stop
        self.temperature = temperature
        self.skip = skip
        self._prompt_tokens: int | None = None

    @classmethod
    def for_policy(cls, policy: RestrictedPolicy, temperature: float, skip: int = 0) -> SampledChoices:
        """The full stop that goes on ('.') and the one that closes the JSON string ('."'), as tokenized."""
        encode = policy.tokenizer.encode
        return cls(encode(".", add_special_tokens=False)[0], encode('."', add_special_tokens=False)[0],
                   temperature, skip)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._prompt_tokens is None:
            self._prompt_tokens = input_ids.shape[1]
        past_skip = input_ids.shape[1] - self._prompt_tokens > self.skip
        best = scores.argmax(dim=1, keepdim=True)
        out = torch.full_like(scores, -torch.inf).scatter_(1, best, 0.0)  # greedy
        if not past_skip:
            return out
        next_statement = input_ids[:, -1] == self.full_stop
        out[next_statement] = scores[next_statement] / self.temperature
        stops = torch.tensor([self.full_stop, self.closing_stop])
        go_on_or_close = ~next_statement & torch.isin(best[:, 0], stops)
        for row in go_on_or_close.nonzero()[:, 0].tolist():
            out[row] = -torch.inf
            out[row, stops] = scores[row, stops] / self.temperature
        return out


def choice_group(policy: RestrictedPolicy, request, group_size: int, temperature: float,
                 decoding: tuple[Callable[[], list], int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The greedy output for `request` and `group_size` rollouts that share its thinking and follow it but for
    the memory's choices, sampled at `temperature` (`SampledChoices`); `decoding` is the processor factory and
    token limit (e.g. the deployed memorizer's, `inference_decoding`)."""
    processors, limit = decoding
    greedy = sample_group(policy, request, 1, 0.0, limit, processors())[0]
    thinking = thinking_ids(policy, greedy)
    chooser = [ForcedPrefix(thinking), SampledChoices.for_policy(policy, temperature, skip=len(thinking))]
    return greedy, sample_group(policy, request, group_size, 1.0, limit, [*processors(), *chooser])
