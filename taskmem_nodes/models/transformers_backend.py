"""Memorizer backend on Hugging Face transformers: any local Qwen3-VL checkpoint (dense or MoE)."""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskmem_nodes.models.base import BackendError, GenerationResult
from taskmem_nodes.models.policy_spec import PolicySpec

SUPPORTED_MODEL_TYPES = ("qwen3_vl", "qwen3_vl_moe")
DTYPES = ("auto", "float32", "bfloat16", "float16")
THINK_OPEN = "<think>"
FREE_DECODING_SLACK = 16  # extra new tokens beyond the budgets when decoding is unconstrained
TIME_RESOLUTION = 1000.0  # frame times are handed to the processor as indices of a 1 kHz clock


@dataclass
class TransformersBackendConfig:
    """Settings of `TransformersBackend`."""

    model_path: str
    """Local Qwen3-VL checkpoint directory (config.json, safetensors weights, processor files)."""
    device: str = "auto"
    """torch device; "auto" picks cuda when available, else cpu."""
    dtype: str = "auto"
    """auto|float32|bfloat16|float16; auto is bfloat16 on cuda and float32 on cpu."""
    max_thinking_tokens: int = 128
    """Budget of the <think> block."""
    max_description_tokens: int = 200
    """Budget of the description of one memory entry (the paper uses 150-300)."""
    enforce_format: bool = False
    """Constrain decoding to <think>..</think>\\n\\n{"description": ".."} (for untrained/tiny models)."""
    max_description_chars: int = 2000
    """With enforce_format, the description also stays within this many characters (the parser's cap)."""
    do_sample: bool = False
    """Sample instead of greedy decoding."""
    temperature: float = 0.7
    """Sampling temperature (only with do_sample)."""
    top_p: float = 0.9
    """Nucleus sampling mass (only with do_sample)."""
    video_max_pixels: int | None = None
    """If set, frames larger than this many pixels are downscaled (aspect kept) before the processor."""
    seed: int = 0
    """torch seed set at load(): a sequence of sampled generations is reproducible."""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.max_thinking_tokens < 0 or self.max_description_tokens < 1 or self.max_description_chars < 1:
            raise ValueError("need max_thinking_tokens >= 0 and description budgets >= 1")
        if self.video_max_pixels is not None and self.video_max_pixels < 1:
            raise ValueError("video_max_pixels must be positive")


def checkpoint_config(path: Path) -> dict:
    """The parsed config.json of a Qwen3-VL checkpoint directory; BackendError if it is not one."""
    if not path.is_dir():
        raise BackendError(f"checkpoint directory {path} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BackendError(f"{path} is not a checkpoint: no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BackendError(f"{config_file} is unreadable: {err}") from err
    if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise BackendError(
            f"{path}: model_type {config.get('model_type')!r} is not one of {SUPPORTED_MODEL_TYPES}"
        )
    if not list(path.glob("*.safetensors")):
        raise BackendError(f"{path} has no *.safetensors weights")
    return config


def checkpoint_version(path: Path, samples: int = 16, chunk: int = 1 << 16) -> str:
    """Version "<dir name>@<12 hex of sha256>" over config.json, weights index and weight files.

    Each weight file contributes its name, size, safetensors header and `samples` evenly spaced
    chunks, so retrained weights of the same shapes get a new version without hashing gigabytes.
    """
    digest = hashlib.sha256((path / "config.json").read_bytes())
    index = path / "model.safetensors.index.json"
    if index.is_file():
        digest.update(index.read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            digest.update(f.read(min(header_len, size)))
            for k in range(samples):
                f.seek(size * k // samples)
                digest.update(f.read(chunk))
    return f"{path.resolve().name}@{digest.hexdigest()[:12]}"


def downscale_frames(video: np.ndarray, max_pixels: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> frames of at most `max_pixels` pixels, aspect ratio kept (area filter)."""
    import torch

    _, height, width, _ = video.shape
    if height * width <= max_pixels:
        return video
    scale = math.sqrt(max_pixels / (height * width))
    size = (max(1, math.floor(height * scale)), max(1, math.floor(width * scale)))
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    frames = torch.nn.functional.interpolate(frames, size=size, mode="area")
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def check_request(request) -> tuple[np.ndarray, tuple[float, ...]]:
    """The request's video (T, H, W, 3) uint8 and frame times, validated; BackendError otherwise."""
    video = np.asarray(request.video)
    times = tuple(float(t) for t in request.frame_times)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 1:
        raise BackendError(f"video must be (T>=1, H, W, 3) uint8, got {video.shape} {video.dtype}")
    if len(times) != video.shape[0]:
        raise BackendError(f"{video.shape[0]} frames but {len(times)} frame_times")
    if any(b <= a for a, b in itertools.pairwise(times)) or times[0] < 0:
        raise BackendError("frame_times must be non-negative and strictly increasing")
    return video, times


def prepare_inputs(processor, request, video_max_pixels: int | None = None):
    """(prompt, processor outputs) for one request, with frame times as the prompt's timestamps.

    The processor prints "<t seconds>" per temporal group as frames_indices / fps averaged over the
    group's first and last frame, so frame times on a 1 kHz clock reproduce them to the millisecond.
    """
    from transformers.video_utils import VideoMetadata

    video, times = check_request(request)
    prompt = processor.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
    if video_max_pixels is not None:
        video = downscale_frames(video, video_max_pixels)
    if len(times) == 1:  # the processor needs >= temporal_patch_size frames; it pads the same way
        video, times = np.concatenate([video, video]), times * 2
    metadata = VideoMetadata(
        total_num_frames=len(times),
        fps=TIME_RESOLUTION,
        width=video.shape[2],
        height=video.shape[1],
        duration=times[-1],
        frames_indices=[round(t * TIME_RESOLUTION) for t in times],
    )
    inputs = processor(
        text=[prompt], videos=[video], video_metadata=[metadata], do_sample_frames=False, return_tensors="pt"
    )
    return prompt, inputs


class AllowedTokens:
    """Logits processor: only the checkpoint's allowed token ids can be generated."""

    def __init__(self, allowed_ids):
        self.allowed_ids = allowed_ids

    def __call__(self, input_ids, scores):
        # scores: (B, V); every id outside the allowed set gets -inf
        masked = scores.new_full(scores.shape, float("-inf"))
        masked[:, self.allowed_ids] = scores[:, self.allowed_ids]
        return masked


class ChosenTokenProbs:
    """Logits processor, last in the list: records the probability each generated token had under the scores
    the earlier processors left (read at the next step, when the chosen token is known; `finish` reads the
    last). Holds one distribution at a time."""

    def __init__(self):
        self.probs: list[float] = []
        self._previous = None

    def __call__(self, input_ids, scores):
        self._record(input_ids)
        self._previous = scores[0].float().softmax(-1)
        return scores

    def finish(self, output_ids) -> tuple[float, ...]:
        self._record(output_ids)
        return tuple(self.probs)

    def _record(self, input_ids) -> None:
        if self._previous is not None:
            self.probs.append(float(self._previous[int(input_ids[0, -1])]))
            self._previous = None


class TransformersBackend:
    """`MemorizerBackend` running a Qwen3-VL checkpoint with transformers' `generate()`.

    Calls are serialised by a lock, so one worker thread (or several) may use one instance. The
    checkpoint directory is checked and `model_version` computed at construction, and again at load().
    """

    def __init__(self, config: TransformersBackendConfig):
        self.config = config
        self.path = Path(config.model_path).expanduser()
        checkpoint_config(self.path)  # fail early on a missing or foreign directory
        self.model_version = checkpoint_version(self.path)
        self._lock = threading.Lock()
        self._model = None
        self._processor = None
        self._device = None
        self._vocab_size = 0
        self._eos_ids: list[int] = []
        self.spec = self._load_spec()
        self._allowed_ids = None  # a tensor of token ids when the checkpoint restricts decoding
        self._adapter = None  # the attached SteeringAdapter, if any
        self._steering = None  # its hook on the model
        self._lora_loaded: set[str] = set()  # peft adapters loaded into the model, by version

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def frames_per_clip(self) -> int:
        """Frames per clip the checkpoint was trained on (0: all)."""
        return self.spec.frames_per_clip

    def _load_spec(self) -> PolicySpec:
        try:
            return PolicySpec.load(self.path)
        except ValueError as err:
            raise BackendError(str(err)) from None

    def load(self) -> None:
        """Load processor and model (no-op when loaded); BackendError if the checkpoint is broken."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from taskmem_nodes.models.format_enforcer import vocab_masks

        with self._lock:
            if self._model is not None:
                return
            checkpoint_config(self.path)
            self.model_version = checkpoint_version(self.path)
            device = self.config.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = self.config.dtype
            if dtype == "auto":
                dtype = "bfloat16" if device.startswith("cuda") else "float32"
            try:
                processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
                model = AutoModelForImageTextToText.from_pretrained(
                    self.path, dtype=getattr(torch, dtype), local_files_only=True
                )
            except Exception as err:  # transformers raises many kinds for broken checkpoints
                raise BackendError(f"cannot load checkpoint {self.path}: {err}") from err
            self._vocab_size = model.config.get_text_config().vocab_size
            eos = model.generation_config.eos_token_id
            self._eos_ids = [e for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
            self.spec = self._load_spec()
            if self.spec.allowed_token_ids:
                allowed = sorted({*self.spec.allowed_token_ids, *self._eos_ids})
                self._allowed_ids = torch.tensor(allowed, device=device)
            if self.config.enforce_format:  # build the cached vocabulary masks now, not in generate()
                vocab_masks(processor.tokenizer, self._vocab_size, device)
            torch.manual_seed(self.config.seed)
            self._model = model.to(device).eval()
            self._processor = processor
            self._device = torch.device(device)

    @property
    def adapter_version(self) -> str:
        """Version of the steering adapter in use ("" = the base policy)."""
        return self._adapter.version if self._adapter is not None else ""

    def set_adapter(self, adapter) -> float:
        """Run the loaded model with `adapter` from the next request on: a SteeringAdapter, a peft LoraAdapter,
        or None for the base policy. Waits for a running request, never interrupts it. Returns the seconds
        generation was held (the hot-swap pause). AdapterError when the adapter does not fit this model."""
        from taskmem_nodes.models.lora import LoraAdapter
        from taskmem_nodes.models.steering import AdapterError, attach_adapter

        with self._lock:
            started = time.perf_counter()
            if self._model is None:
                raise BackendError("backend is not loaded; call load() first")
            model = self._model
            hook = None
            if isinstance(adapter, LoraAdapter):
                try:
                    if adapter.version not in self._lora_loaded:
                        model.load_adapter(str(adapter.path), adapter_name=adapter.version)
                        self._lora_loaded.add(adapter.version)
                    model.set_adapter(adapter.version)
                    model.enable_adapters()
                except (ValueError, OSError, RuntimeError, KeyError) as err:
                    raise AdapterError(f"cannot load LoRA adapter {adapter.path}: {err}") from None
            else:
                hook = (attach_adapter(model, adapter, self._device, self._processor.tokenizer)
                        if adapter is not None else None)
                if self._lora_loaded:
                    model.disable_adapters()
            if self._steering is not None:
                self._steering.detach()
            self._steering, self._adapter = hook, adapter
            return time.perf_counter() - started

    def unload(self) -> None:
        """Free the model and processor."""
        import torch

        with self._lock:
            self._steering = self._adapter = None
            self._lora_loaded = set()
            on_cuda = self._device is not None and self._device.type == "cuda"
            self._model = self._processor = self._device = self._allowed_ids = None
            gc.collect()
            if on_cuda:
                torch.cuda.empty_cache()

    def generate(self, request) -> GenerationResult:
        """Describe one window: chat template + video processor + `model.generate()`."""
        import torch
        from transformers import LogitsProcessorList

        from taskmem_nodes.models.format_enforcer import FormatEnforcer

        with self._lock, torch.inference_mode():
            if self._model is None:
                raise BackendError("backend is not loaded; call load() first")
            start = time.perf_counter()
            cfg, model, processor = self.config, self._model, self._processor
            prompt, inputs = prepare_inputs(processor, request, cfg.video_max_pixels)
            inputs = inputs.to(self._device)
            prompt_tokens = inputs["input_ids"].shape[1]

            # The template may prefill "<think>\n"; it is put back so the text always opens the block.
            prefill = THINK_OPEN + "\n" if prompt.endswith(THINK_OPEN + "\n") else ""
            kwargs = {"do_sample": cfg.do_sample}
            processors = [AllowedTokens(self._allowed_ids)] if self._allowed_ids is not None else []
            if cfg.do_sample:
                kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
            if cfg.enforce_format:
                enforcer = FormatEnforcer(
                    processor.tokenizer,
                    vocab_size=self._vocab_size,
                    max_thinking_tokens=cfg.max_thinking_tokens,
                    max_description_tokens=cfg.max_description_tokens,
                    max_description_chars=cfg.max_description_chars,
                    think_prefilled=bool(prefill),
                    eos_token_ids=self._eos_ids,
                    device=self._device,
                )
                processors.append(enforcer)
                kwargs["max_new_tokens"] = enforcer.max_new_tokens
            else:
                budget = cfg.max_thinking_tokens + cfg.max_description_tokens
                kwargs["max_new_tokens"] = budget + FREE_DECODING_SLACK
            chosen = ChosenTokenProbs()
            kwargs["logits_processor"] = LogitsProcessorList([*processors, chosen])
            output = model.generate(**inputs, **kwargs)  # (1, prompt + new)
            new_tokens = output[0, prompt_tokens:]
            decode = processor.tokenizer.decode
            text = prefill + decode(new_tokens, skip_special_tokens=True)
            starts = tuple(len(prefill + decode(new_tokens[:k], skip_special_tokens=True))
                           for k in range(len(new_tokens)))
            return GenerationResult(
                text=text,
                prompt_tokens=prompt_tokens,
                output_tokens=int(new_tokens.shape[0]),
                seconds=time.perf_counter() - start,
                adapter_version=self.adapter_version,
                token_starts=starts,
                token_probs=chosen.finish(output),
            )
