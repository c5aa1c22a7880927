"""Judges of open answers: normalized match, and an OpenAI-compatible endpoint (a local server here)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from taskmem_nodes.bench.judges import JudgeError, NormalizedMatchJudge, OpenAIJudge, make_judge, normalize
from taskmem_nodes.bench.types import BenchTask


def task(answer, alternatives=()):
    return BenchTask("t", "s", "count", "How many red mugs?", (), answer, -1, 0.0, alternatives=alternatives)


def test_normalized_match():
    judge = NormalizedMatchJudge()
    assert normalize("The Kitchen-Table, two!") == ["kitchen", "table", "2"]
    assert judge.judge(task("kitchen table"), "2 red mugs on the kitchen table.")
    assert judge.judge(task("2"), "Two red mugs.")
    assert not judge.judge(task("kitchen table"), "on the table in the kitchen")  # words must be in order
    assert not judge.judge(task("red", ("blue", "green")), "red or blue")  # hedging
    assert judge.judge(task("dark red", ("red",)), "a dark red mug")  # an alternative inside the answer is fine
    assert not judge.judge(task("kitchen table"), "")
    assert not judge.judge(task(""), "anything")


class Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint on loopback that replies from a script."""

    script: ClassVar[list] = []  # (status, reply) per request; then "yes"
    seen: ClassVar[list] = []  # (path, headers, body) per request

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Endpoint.seen.append((self.path, dict(self.headers), body))
        status, reply = Endpoint.script.pop(0) if Endpoint.script else (200, "yes")
        payload = reply if isinstance(reply, bytes) else json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    Endpoint.script, Endpoint.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_judge_asks_and_parses(endpoint, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sekret")
    judge = OpenAIJudge(endpoint, "judge-model", api_key_env="TEST_JUDGE_KEY")
    Endpoint.script = [(200, "Yes."), (200, " no")]
    assert judge.judge(task("2"), "two mugs") is True
    assert judge.judge(task("2"), "three mugs") is False
    path, headers, body = Endpoint.seen[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sekret"
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert "two mugs" in body["messages"][-1]["content"] and "How many red mugs?" in body["messages"][-1]["content"]


def test_openai_judge_retries_then_fails_clearly(endpoint):
    judge = OpenAIJudge(endpoint, "m", api_key_env="UNSET_JUDGE_KEY", retries=2)
    Endpoint.script = [(500, "oops"), (503, "busy"), (200, "yes")]
    assert judge.judge(task("2"), "2")  # two server errors, then an answer
    assert "Authorization" not in Endpoint.seen[-1][1]
    Endpoint.script = [(500, "x")] * 3
    with pytest.raises(JudgeError, match="HTTP 500"):
        judge.judge(task("2"), "2")
    Endpoint.script = [(401, "no key")]
    with pytest.raises(JudgeError, match="HTTP 401"):
        judge.judge(task("2"), "2")
    assert not Endpoint.script  # a client error is not retried
    Endpoint.script = [(200, "maybe")]
    with pytest.raises(JudgeError, match="not yes or no"):
        judge.judge(task("2"), "2")
    Endpoint.script = [(200, b"<html>")] * 3
    with pytest.raises(JudgeError, match="not JSON"):
        judge.judge(task("2"), "2")


def test_openai_judge_unreachable_endpoint():
    with ThreadingHTTPServer(("127.0.0.1", 0), Endpoint) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there
    judge = OpenAIJudge(f"http://127.0.0.1:{port}", "m", retries=0, timeout=2)
    with pytest.raises(JudgeError, match="cannot reach"):
        judge.judge(task("2"), "2")


def test_openai_judge_times_out():
    class Silent(BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(1.0)  # longer than the judge waits

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    judge = OpenAIJudge(f"http://127.0.0.1:{server.server_address[1]}", "m", timeout=0.2, retries=1)
    started = time.monotonic()
    with pytest.raises(JudgeError, match="timed out"):
        judge.judge(task("2"), "2")
    assert time.monotonic() - started < 1.5
    server.shutdown()
    server.server_close()


def test_make_judge():
    assert isinstance(make_judge("normalized"), NormalizedMatchJudge)
    judge = make_judge("openai:http://127.0.0.1:8000/v1#qwen3")
    assert isinstance(judge, OpenAIJudge) and judge.model == "qwen3" and judge.base_url == "http://127.0.0.1:8000/v1"
    for bad in ("openai:127.0.0.1#m", "openai:http://x", "llm"):
        with pytest.raises(ValueError):
            make_judge(bad)


def test_openai_task_judge_compares_memories_and_refuses_other_replies(endpoint):
    from taskmem_nodes.train.task_judge import ClipRef, make_task_judge

    judge = make_task_judge(f"openai:{endpoint}#judge-model")
    Endpoint.script = [(200, "A"), (200, "b."), (200, "Tie"), (200, "memory A is better")]
    clip = ClipRef("s", 3)
    args = ("location", ["Where was the red mug last seen?"], "1 red mug on the kitchen table.", "in the hall.")
    assert [judge.prefer(clip, *args) for _ in range(3)] == ["first", "second", "tie"]
    with pytest.raises(JudgeError, match="not A, B or tie"):
        judge.prefer(clip, *args)
    prompt = Endpoint.seen[0][2]["messages"][-1]["content"]
    assert "Where was the red mug" in prompt and "Memory A: 1 red mug" in prompt and "Memory B: in the hall." in prompt
    with pytest.raises(ValueError, match="openai:<http"):
        make_task_judge("openai:ftp://x#m")
