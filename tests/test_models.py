"""Tests of taskmem_nodes.models: real tokenizer, tiny Qwen3-VL checkpoint, processor and generate().

No mocks: every test runs the real transformers code paths on a tiny random Qwen3-VL built once per
session. Decoding budgets are kept small because the full 151,936-id output head dominates each step.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # an accidental download must fail loudly

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from taskmem_nodes.models import BackendError, GenerationResult, MemorizerBackend  # noqa: E402
from taskmem_nodes.models.format_enforcer import FormatEnforcer, vocab_masks  # noqa: E402
from taskmem_nodes.models.qwen_tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, build_qwen_tokenizer  # noqa: E402
from taskmem_nodes.models.tiny import VOCAB_SIZE, build_tiny_checkpoint, is_complete  # noqa: E402
from taskmem_nodes.models.transformers_backend import (  # noqa: E402
    ChosenTokenProbs,
    TransformersBackend,
    TransformersBackendConfig,
    prepare_inputs,
)
from taskmem_nodes.policy import parse_output  # noqa: E402

THINK_BUDGET = 8
DESCRIPTION_BUDGET = 12
SYSTEM = "You are the memorizer of a home robot."
QUESTION = "Describe what happened in this window."


@dataclass(frozen=True)
class Request:
    """Duck-typed stand-in for taskmem_nodes.policy.PolicyRequest."""

    messages: list[dict]
    video: np.ndarray  # (T, H, W, 3) uint8
    frame_times: tuple[float, ...]


def make_request(frames: int, height: int = 64, width: int = 64, seed: int = 0, times=None) -> Request:
    rng = np.random.default_rng(seed)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]},
    ]
    video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    times = tuple(float(t) for t in (times if times is not None else range(frames)))
    return Request(messages, video, times)


def expected_timestamps(times: tuple[float, ...]) -> list[str]:
    """Qwen3-VL labels each 2-frame temporal group with the mean of its first and last frame time."""
    padded = list(times) + ([times[-1]] if len(times) % 2 else [])
    return [f"{(padded[i] + padded[i + 1]) / 2:.1f}" for i in range(0, len(padded), 2)]


def parse_memory(text: str) -> str:
    """The description of '<think>..</think>\\n\\n{"description": ".."}', asserting the exact format."""
    assert text.startswith("<think>"), text
    assert text.count("<think>") == 1 and text.count("</think>") == 1, text
    body = json.loads(text.split("</think>", 1)[1])
    assert set(body) == {"description"}, body
    assert isinstance(body["description"], str) and body["description"].strip(), body
    return body["description"]


@pytest.fixture(scope="session")
def tokenizer():
    return build_qwen_tokenizer()


@pytest.fixture(scope="session")
def checkpoint(tiny_checkpoint):
    """The session's tiny checkpoint (conftest.py builds it once with `build_tiny_checkpoint`)."""
    return tiny_checkpoint


@pytest.fixture(scope="session")
def processor(checkpoint):
    return transformers.AutoProcessor.from_pretrained(checkpoint, local_files_only=True)


@pytest.fixture(scope="session")
def enforced_backend(checkpoint):
    config = TransformersBackendConfig(
        str(checkpoint),
        enforce_format=True,
        max_thinking_tokens=THINK_BUDGET,
        max_description_tokens=DESCRIPTION_BUDGET,
    )
    backend = TransformersBackend(config)
    backend.load()
    yield backend
    backend.unload()


# --- tokenizer -------------------------------------------------------------------------------------


def test_special_token_ids(tokenizer):
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token, _ in SPECIAL_TOKENS}
    assert list(ids.values()) == list(range(151643, 151669))
    assert ids["<|endoftext|>"] == 151643
    assert ids["<|vision_start|>"] == 151652
    assert ids["<|image_pad|>"] == 151655
    assert ids["<|video_pad|>"] == 151656
    assert ids["<think>"] == 151667 and ids["</think>"] == 151668
    assert len(tokenizer) == 151669
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    # <think> stays in decoded text, chat markers do not.
    ids = tokenizer.encode("<|im_start|>assistant\n<think>\nhm</think>\n\nok<|im_end|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "assistant\n<think>\nhm</think>\n\nok"


@pytest.mark.parametrize(
    "text",
    [
        "The robot put the yellow box on the sofa in the living room.",
        "Person 3 (blue shirt) entered at 12.5 s; 2 cups remain.\n\n  Indented\tline.",
        '{"description": "kitchen, mug left of sink"}',
    ],
)
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_known_words_are_stable(tokenizer):
    assert tokenizer.encode("Hello world") == [9707, 1879]  # the real Qwen ids
    word = " photosynthesis"
    ids = tokenizer.encode(word)
    assert len(ids) >= 2 and all(i < 151643 for i in ids)
    assert build_qwen_tokenizer().encode(word) == ids == tokenizer.encode(word)


# --- tiny checkpoint and processor ---------------------------------------------------------------------


def test_tiny_checkpoint_is_standard(checkpoint, tokenizer):
    assert is_complete(checkpoint)
    stamp = (checkpoint / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_checkpoint(checkpoint) == checkpoint  # idempotent
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == stamp
    config = transformers.AutoConfig.from_pretrained(checkpoint, local_files_only=True)
    assert config.model_type == "qwen3_vl"
    assert config.text_config.vocab_size == VOCAB_SIZE
    vision = config.vision_config
    assert (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) == (16, 2, 2)
    assert all(0 <= i < vision.depth for i in vision.deepstack_visual_indexes)
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")


def test_processor_reloads_with_real_tokenizer(processor, tokenizer):
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert processor.video_processor.merge_size == 2
    text = "A man in a red jacket picks up the remote."
    assert processor.tokenizer.encode(text) == tokenizer.encode(text)
    assert processor.chat_template == CHAT_TEMPLATE
    prompt = processor.apply_chat_template(
        make_request(2).messages, add_generation_prompt=True, tokenize=False
    )
    assert prompt == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n<|video_pad|>{QUESTION}<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )


@pytest.mark.parametrize(
    ("times", "size", "tokens_per_group"),
    [
        (tuple(range(10)), (64, 64), 4),  # 64x64 -> 2x2 merged patches
        ((0.0, 1.5, 2.0, 7.25, 49.9), (240, 320), 2),  # odd count: last frame repeated; 32x64 after resize
        ((3.0,), (40, 80), 2),  # a single frame, 32x64 after resize
        (tuple(i * 50 / 49 for i in range(50)), (64, 64), 4),  # a full 50-s window
    ],
)
def test_prompt_expansion(processor, times, size, tokens_per_group):
    request = make_request(len(times), *size, times=times)
    prompt, inputs = prepare_inputs(processor, request)
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    groups = "".join(
        f"<{stamp} seconds><|vision_start|>{'<|video_pad|>' * tokens_per_group}<|vision_end|>"
        for stamp in expected_timestamps(times)
    )
    assert text == prompt.replace("<|video_pad|>", groups)
    grid = inputs["video_grid_thw"][0].tolist()
    assert grid[0] == len(expected_timestamps(times))
    assert (inputs["input_ids"] == processor.video_token_id).sum() == grid[0] * grid[1] * grid[2] // 4
    assert "<|vision_start|><|vision_start|>" not in text and "<|vision_end|><|vision_end|>" not in text
    assert text.count("<|vision_start|>") == grid[0]


def test_video_max_pixels_downscales(processor):
    request = make_request(4, 480, 640)
    _, capped = prepare_inputs(processor, request, video_max_pixels=32 * 32)
    assert capped["video_grid_thw"][0].tolist() == [2, 2, 2]  # one 32x32 merged patch per group


# --- backend ----------------------------------------------------------------------------------------


def test_backend_protocol_and_version(enforced_backend, checkpoint):
    assert isinstance(enforced_backend, MemorizerBackend)
    assert enforced_backend.loaded
    assert re.fullmatch(rf"{re.escape(checkpoint.name)}@[0-9a-f]{{12}}", enforced_backend.model_version)
    other = TransformersBackend(TransformersBackendConfig(str(checkpoint)))
    assert other.model_version == enforced_backend.model_version and not other.loaded


@pytest.mark.parametrize(
    ("frames", "height", "width", "seed"),
    [(10, 64, 64, 0), (50, 64, 64, 1), (7, 240, 320, 2), (1, 48, 80, 3), (50, 240, 320, 4)],
)
def test_enforced_generate_always_parses(enforced_backend, frames, height, width, seed):
    result = enforced_backend.generate(make_request(frames, height, width, seed))
    assert isinstance(result, GenerationResult)
    parse_memory(result.text)
    bound = 1 + THINK_BUDGET + 5 + DESCRIPTION_BUDGET + 1 + 1  # </think>, prefix, close, <|im_end|>
    assert 0 < result.output_tokens <= bound
    assert result.prompt_tokens > frames // 2 and result.seconds > 0


def test_generate_tells_where_each_token_starts_and_how_likely_it_was(enforced_backend):
    result = enforced_backend.generate(make_request(10, seed=5))
    assert len(result.token_starts) == len(result.token_probs) == result.output_tokens
    assert result.token_starts[0] == len("<think>\n") and result.text.startswith("<think>\n")
    assert list(result.token_starts) == sorted(result.token_starts) and result.token_starts[-1] <= len(result.text)
    assert all(0.0 < p <= 1.0 for p in result.token_probs)


def test_chosen_token_probs_are_those_of_a_plain_forward_pass(enforced_backend):
    """The recorder reads each token's probability one step late (when it is known): checked against the
    softmax of one forward pass over the generated sequence."""
    model = enforced_backend._model
    _, inputs = prepare_inputs(enforced_backend._processor, make_request(4, seed=6))
    chosen = ChosenTokenProbs()
    with torch.no_grad():
        output = model.generate(**inputs, do_sample=False, max_new_tokens=6, logits_processor=[chosen])
        prompt = inputs["input_ids"].shape[1]
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        if "mm_token_type_ids" in inputs:
            pad = torch.zeros(1, output.shape[1] - prompt, dtype=inputs["mm_token_type_ids"].dtype)
            extra["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], pad], dim=1)
        logits = model(input_ids=output, attention_mask=torch.ones_like(output), **extra).logits[0]
    plain = logits[prompt - 1: -1].float().softmax(-1).gather(1, output[0, prompt:, None])[:, 0]
    assert chosen.finish(output) == pytest.approx(plain.tolist(), abs=1e-4)
    assert len(plain) == output.shape[1] - prompt == 6


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("prefilled", [True, False])
def test_enforcer_survives_adversarial_scores(tokenizer, seed, prefilled):
    """A fake model that loves eos, quotes, '\\', '<', special and unused ids still yields the format."""
    gen = torch.Generator().manual_seed(seed)
    think_budget = [0, 3, 40][seed % 3]
    max_chars = [None, 1, 25][seed % 3]
    enforcer = FormatEnforcer(
        tokenizer, VOCAB_SIZE, think_budget, 1 + 7 * seed, max_chars, think_prefilled=prefilled
    )
    tempting = [tokenizer.eos_token_id, 151643, 151668, 151655, 151700, VOCAB_SIZE - 1]
    tempting += [tokenizer.convert_tokens_to_ids(t) for t in ['"', '"}', "\\", "<", "Ċ", "Ġ"]]
    tempting += [tokenizer.encode(t, add_special_tokens=False)[0] for t in ['."', '"?']]
    ids = tokenizer.encode("<|im_start|>assistant\n<think>\n" if prefilled else "<|im_start|>assistant\n")
    input_ids = torch.tensor([ids])
    for _ in range(enforcer.max_new_tokens):
        scores = torch.randn(1, VOCAB_SIZE, generator=gen)
        scores[0, tempting] += torch.rand(len(tempting), generator=gen) * 30
        scores = enforcer(input_ids, scores)
        token = torch.multinomial(scores.softmax(-1), 1, generator=gen)  # (1, 1)
        input_ids = torch.cat([input_ids, token], dim=1)
        if token.item() == tokenizer.eos_token_id:
            break
    assert input_ids[0, -1] == tokenizer.eos_token_id
    new = input_ids[0, len(ids) :]
    text = ("<think>\n" if prefilled else "") + tokenizer.decode(new, skip_special_tokens=True)
    description = parse_memory(text)
    assert max_chars is None or len(description) <= max_chars


def test_enforcer_ends_a_description_that_repeats_a_sentence(tokenizer):
    """A model stuck in a loop is stopped at the first sentence it says again."""
    enforcer = FormatEnforcer(tokenizer, VOCAB_SIZE, 4, 60)
    loop = tokenizer.encode(" person 5 leaves.", add_special_tokens=False)
    wanted = [*tokenizer.encode("hm</think>", add_special_tokens=False), *enforcer.prefix,
              *tokenizer.encode("in the hall.", add_special_tokens=False), *loop * 5]
    ids = tokenizer.encode("<|im_start|>assistant\n<think>\n")
    input_ids = torch.tensor([ids])
    for step in range(enforcer.max_new_tokens):
        scores = torch.zeros(1, VOCAB_SIZE)
        scores[0, wanted[min(step, len(wanted) - 1)]] = 50.0  # the looping model's favourite next token
        token = enforcer(input_ids, scores).argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, token], dim=1)
        if token.item() == tokenizer.eos_token_id:
            break
    text = "<think>\n" + tokenizer.decode(input_ids[0, len(ids):], skip_special_tokens=True)
    assert text.endswith('{"description": "in the hall. person 5 leaves. person 5 leaves."}')
    assert parse_output(text).description == "in the hall. person 5 leaves."


def test_enforcer_lets_the_model_close_the_description_as_it_was_trained(tokenizer):
    """Training targets end `bench."}`, tokenized `bench` `."` `}`: the model's own closing token ends the
    description (it used to be banned for its quote, and the model wrote on until it repeated itself)."""
    enforcer = FormatEnforcer(tokenizer, VOCAB_SIZE, 4, 60)
    trained = tokenizer.encode('hm</think>\n\n{"description": "in the hall. a book appears on the hall bench."}',
                               add_special_tokens=False)
    assert tokenizer.decode(trained[-2:]) == '."}'
    ids = tokenizer.encode("<|im_start|>assistant\n<think>\n")
    input_ids = torch.tensor([ids])
    for step in range(enforcer.max_new_tokens):
        scores = torch.zeros(1, VOCAB_SIZE)
        scores[0, trained[step] if step < len(trained) else tokenizer.eos_token_id] = 50.0
        scores[0, tokenizer.encode(" the", add_special_tokens=False)[0]] = 40.0  # a talkative second choice
        token = enforcer(input_ids, scores).argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, token], dim=1)
        if token.item() == tokenizer.eos_token_id:
            break
    text = tokenizer.decode(input_ids[0, len(ids):], skip_special_tokens=False)
    assert text == 'hm</think>\n\n{"description": "in the hall. a book appears on the hall bench."}<|im_end|>'


def test_vocab_masks_are_cached(tokenizer):
    masks = vocab_masks(tokenizer, VOCAB_SIZE)
    assert vocab_masks(tokenizer, VOCAB_SIZE) is masks
    assert masks.think.shape == (VOCAB_SIZE,) and masks.think[151669:].all()
    assert not masks.think[tokenizer.convert_tokens_to_ids("</think>")]
    assert masks.description[tokenizer.convert_tokens_to_ids('"}')]
    assert not masks.description[tokenizer.encode(" kitchen")[0]]
    assert masks.closing[tokenizer.convert_tokens_to_ids('"}')] and masks.closing[tokenizer.encode('."')[0]]
    assert not masks.closing[tokenizer.encode(" kitchen")[0]] and not masks.closing[tokenizer.encode('\\"')[0]]


def test_free_generate_then_unload(checkpoint):
    config = TransformersBackendConfig(
        str(checkpoint), max_thinking_tokens=6, max_description_tokens=6, do_sample=True, seed=7
    )
    backend = TransformersBackend(config)
    with pytest.raises(BackendError, match="not loaded"):
        backend.generate(make_request(4))
    backend.load()
    result = backend.generate(make_request(4, 96, 128))
    assert isinstance(result.text, str) and result.text.startswith("<think>\n")
    assert 0 < result.output_tokens <= 6 + 6 + 16
    backend.unload()
    assert not backend.loaded


def test_bad_requests(enforced_backend):
    request = make_request(4)
    with pytest.raises(BackendError, match="frame_times"):
        enforced_backend.generate(Request(request.messages, request.video, (0.0, 1.0)))
    with pytest.raises(BackendError, match="increasing"):
        enforced_backend.generate(Request(request.messages, request.video, (0.0, 2.0, 1.0, 3.0)))
    with pytest.raises(BackendError, match="uint8"):
        enforced_backend.generate(
            Request(request.messages, request.video.astype(np.float32), request.frame_times)
        )


def test_missing_or_invalid_checkpoint(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        TransformersBackend(TransformersBackendConfig(str(tmp_path / "nope")))
    with pytest.raises(BackendError, match=r"no config\.json"):
        TransformersBackend(TransformersBackendConfig(str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BackendError, match="model_type 'llama'"):
        TransformersBackend(TransformersBackendConfig(str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    with pytest.raises(BackendError, match=r"no \*\.safetensors"):
        TransformersBackend(TransformersBackendConfig(str(tmp_path)))
