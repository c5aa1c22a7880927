"""Memorizer model backends: the backend interface, the offline Qwen tokenizer, tiny Qwen3-VL
checkpoints for tests, and the transformers backend with its output-format enforcer.

Heavy modules (torch, transformers) are imported only by the submodules that need them, so importing
this package stays cheap.
"""

from taskmem_nodes.models.base import BackendError, GenerationResult, MemorizerBackend

__all__ = ["BackendError", "GenerationResult", "MemorizerBackend"]
