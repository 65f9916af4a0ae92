"""An emulator of vLLM's OpenAI-compatible server: same routes, shapes, metrics and timing."""
