"""Judges of open answers: is a free-text prediction a correct answer to the task?

Multiple choice needs no judge (the chosen option is compared). Two judges behind one protocol:
- `NormalizedMatchJudge`: every word of the reference answer appears in the prediction (after lower-casing,
  dropping punctuation and articles, and writing numbers as digits), and no known wrong alternative does
  (so "red or blue" is not a correct "red"). Exact enough for the synthetic world's short answers.
- `OpenAIJudge`: asks a model behind any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server,
  a hosted API) for "yes"/"no"; for the published datasets' free-form answers.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from taskmem_nodes.bench.types import BenchTask

_ARTICLES = {"a", "an", "the"}
_NUMBERS = {w: str(i) for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"))}


class JudgeError(RuntimeError):
    """A judge could not give a verdict (unreachable endpoint, unusable reply)."""


class Judge(Protocol):
    name: str

    def judge(self, task: BenchTask, prediction: str) -> bool:
        """True when `prediction` answers `task` correctly."""


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation or articles, numbers as digits."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [_NUMBERS.get(w, w) for w in words if w not in _ARTICLES]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    """`needle` occurs in `haystack` as a contiguous run of words."""
    size = len(needle)
    return size > 0 and any(haystack[i:i + size] == needle for i in range(len(haystack) - size + 1))


@dataclass
class NormalizedMatchJudge:
    """The reference answer's words appear in the prediction, no wrong alternative does."""

    name: str = "normalized"

    def judge(self, task: BenchTask, prediction: str) -> bool:
        said, gold = normalize(prediction), normalize(task.answer)
        if not said or not gold or not _contains(said, gold):
            return False
        for wrong in task.alternatives:
            words = normalize(wrong)
            if words and not _contains(gold, words) and _contains(said, words):
                return False
        return True


JUDGE_PROMPT = (
    "You grade answers to questions about a video. Reply with exactly one word: yes if the predicted answer "
    "means the same as the reference answer, no otherwise."
)


@dataclass
class ChatEndpoint:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint (vLLM, llama.cpp server, a hosted API)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 30.0
    retries: int = 2

    def complete(self, messages: list[dict], max_tokens: int) -> str:
        """The reply's text at temperature 0; JudgeError when unreachable or unusable."""
        reply = self._post({"model": self.model, "temperature": 0, "max_tokens": max_tokens, "messages": messages})
        try:
            return str(reply["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"judge reply has no choices[0].message.content: {str(reply)[:200]}") from None

    def reply_word(self, system: str, user: str, max_tokens: int = 3) -> tuple[str, str]:
        """(the reply's letters, lower-case; the reply) to a one-word question."""
        content = self.complete([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                max_tokens=max_tokens)
        return re.sub(r"[^a-z]", "", content.lower()), content

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url.rstrip('/')}/chat/completions",
                                         data=json.dumps(body).encode(), headers=headers, method="POST")
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                problem = f"HTTP {err.code} from {request.full_url}"
                if err.code < 500 and err.code != 429:
                    break  # a client error does not go away by retrying
            except (urllib.error.URLError, TimeoutError, OSError) as err:
                problem = f"cannot reach {request.full_url}: {getattr(err, 'reason', err)}"
            except (json.JSONDecodeError, UnicodeDecodeError):
                problem = f"the reply of {request.full_url} is not JSON"
            if attempt < self.retries:
                time.sleep(0.2 * 2**attempt)
        raise JudgeError(problem)


@dataclass
class OpenAIJudge(ChatEndpoint):
    """The endpoint's model says yes or no."""

    name: str = "openai"

    def judge(self, task: BenchTask, prediction: str) -> bool:
        verdict, content = self.reply_word(JUDGE_PROMPT, f"Question: {task.question}\nReference answer: "
                                                         f"{task.answer}\nPredicted answer: {prediction}\n"
                                                         "Same meaning (yes/no)?")
        if verdict.startswith("yes"):
            return True
        if verdict.startswith("no"):
            return False
        raise JudgeError(f"judge replied {content[:80]!r}, not yes or no")


def endpoint_spec(spec: str) -> tuple[str, str]:
    """'openai:<base_url>#<model>' -> (base_url, model); ValueError naming the expected form."""
    url, _, model = spec.removeprefix("openai:").partition("#")
    if not spec.startswith("openai:") or not url.startswith(("http://", "https://")) or not model:
        raise ValueError(f"{spec!r}: write openai:<http(s) base url>#<model name>")
    return url, model


def make_judge(spec: str) -> Judge:
    """'normalized' (or 'exact'), or 'openai:<base_url>#<model>'."""
    if spec in ("normalized", "exact"):
        return NormalizedMatchJudge()
    if spec.startswith("openai:"):
        return OpenAIJudge(*endpoint_spec(spec))
    raise ValueError(f"unknown judge {spec!r}; use normalized or openai:<base_url>#<model>")
