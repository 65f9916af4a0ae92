"""The emulator's configuration, resolved once from the command line."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_VLLM_VERSION = "0.11.0"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs; immutable so handlers can read it without locks."""

    model: str
    served_model_names: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    admin_port: int | None = None
    max_model_len: int = 8192
    max_num_seqs: int = 256
    kv_cache_tokens: int = 65_536
    prefill_ms_per_token: float = 0.25
    itl_ms: float = 15.0
    itl_ms_per_seq: float = 0.1
    speed: float = 1.0
    no_latency: bool = False
    min_output_tokens: int = 16
    max_output_tokens: int = 64
    embedding_dim: int = 16
    auto_tool_choice: bool = True
    vllm_version: str = DEFAULT_VLLM_VERSION
    access_log: bool = False

    @property
    def served_name(self) -> str:
        """The name vLLM puts in every response's ``model`` field (the first served name)."""
        return self.served_model_names[0]
