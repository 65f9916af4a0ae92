"""Fulcrum: an OpenAI-compatible LLM gateway for hybrid Bedrock + vLLM fleets."""

__version__ = "0.1.0"
