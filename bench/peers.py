"""Peer gateways measured in the same run: LiteLLM's proxy, from its own venv (.venv-peers).

LiteLLM lives in a separate virtualenv (``make bench-peers`` creates it) because its dependency
tree is large and must never leak into Fulcrum's. It is pointed at the bench upstream as a
generic OpenAI-compatible backend (``openai/<model>`` with ``api_base``), the fairest match for
Fulcrum's ``provider: openai`` deployment. Its start-up fetches (model cost map, blog posts...)
are switched to the copies bundled in the package, so the run stays on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from bench import procs

PEERS_VENV = ".venv-peers"
LITELLM_READY_PATH = "/health/liveliness"

# Keep LiteLLM offline and quiet: bundled data instead of downloads, no docs UI, no debug logs.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOG": "ERROR",
    "NO_DOCS": "True",
    "NO_REDOC": "True",
    "DISABLE_ADMIN_UI": "True",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}


def litellm_binary(repo_root: Path) -> Path:
    return repo_root / PEERS_VENV / "bin" / "litellm"


def litellm_config(upstream_url: str, model: str) -> dict[str, Any]:
    """One model, served by the bench upstream through LiteLLM's OpenAI-compatible provider."""
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"drop_params": True, "set_verbose": False},
        # No key, like Fulcrum's `auth: none` row: measure proxying, not key checks.
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }


def litellm_version(repo_root: Path) -> str | None:
    """The installed LiteLLM version, read from its venv's metadata (None if absent)."""
    python = repo_root / PEERS_VENV / "bin" / "python"
    if not python.exists():
        return None
    try:
        out = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def start_litellm(
    repo_root: Path,
    work_dir: Path,
    log_dir: Path,
    upstream_url: str,
    model: str,
    core: int | None,
) -> procs.Server:
    """Start ``litellm --config`` with one uvicorn worker; StartError if it is not installed."""
    binary = litellm_binary(repo_root)
    if not binary.exists():
        raise procs.StartError(f"{PEERS_VENV}/bin/litellm not found (run `make bench-peers`)")
    config = work_dir / "litellm.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(litellm_config(upstream_url, model), sort_keys=False))
    port = procs.free_port()
    argv = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    return procs.start("litellm", argv, port, log_dir, core, env=LITELLM_ENV)
