"""Statement-level credit for Phase One (GSPO-token): the tokens of each statement of a rollout's memory get
that statement's own credit on top of the rollout's sequence advantage.

GSPO gives every token of a rollout the same advantage, so a memory with three true facts and one false one
is pushed up or down as a whole, and the cheapest way to a better reward is to say less. GSPO-token lets the
advantage vary by token; here a statement is worth +1 when it is a new true fact and -1 when it is false or
repeated (`fact_judge.statement_values`, ground truth), centred on the mean of the group's statements: a
statement gains what it is better than the group's average statement, so stating more is pushed neither up
nor down as such, only stating the right things. The thinking and the JSON get the sequence advantage alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from taskmem_nodes.models.steering import THINK_END
from taskmem_nodes.train.fact_judge import sentence_spans


def token_offsets(render: Callable[[Sequence[int]], str], ids: Sequence[int]) -> list[int]:
    """Where each token's text starts in `render(ids)` (e.g. `RestrictedPolicy.output_text`), and, last, where
    the text ends."""
    return [len(render(ids[:k])) for k in range(len(ids) + 1)]


def statement_token_credit(text: str, description: str, offsets: Sequence[int],
                           credits: Sequence[float]) -> torch.Tensor:
    """Per token of the output `text`: the credit of the statement of its `description` the token belongs to (a
    token that straddles two takes the first), 0 outside the statements. `credits` has one value per sentence
    of the description; when the description cannot be found verbatim in `text` (an escaped character) every
    token gets 0."""
    values = torch.zeros(len(offsets) - 1)
    where = text.find(description, text.find(THINK_END))
    spans = sentence_spans(description)
    if where < 0 or len(spans) != len(credits):
        return values
    for k in range(len(values)):
        start, end = offsets[k], offsets[k + 1]
        for (first, last, _), credit in zip(spans, credits, strict=True):
            if start < where + last and where + first < end:
                values[k] = credit
                break
    return values


def centred_credits(values: Sequence[Sequence[int] | None]) -> list[list[float]]:
    """Statement values (+1 / -1 / 0 per sentence; None for a rollout that does not parse) less the mean of the
    group's +1 and -1 values; a 0 stays 0."""
    judged = [v for rollout in values if rollout for v in rollout if v]
    mean = sum(judged) / len(judged) if judged else 0.0
    return [[v - mean if v else 0.0 for v in rollout] if rollout else [] for rollout in values]
