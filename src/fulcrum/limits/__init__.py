"""Per-tenant rate limits (RPM, TPM, concurrency) and budgets (USD per UTC day and month).

- ``admission``: the protocol the pipeline calls (admit → Reservation → settle).
- ``limiter``: ``RateLimiter`` (the implementation) and ``build_limiter`` (from configuration).
- ``plans`` / ``checks``: a Principal's policy as backend-neutral checks, and the answers.
- ``memory`` / ``window`` / ``periods``: the in-process backend and its pure pieces.
- ``redis_backend`` / ``scripts``: the shared backend and its Lua scripts.
- ``settlement``: batched, retried settlements for the shared backend.
- ``headers`` / ``rejections``: OpenAI-style ``x-ratelimit-*`` headers, 429s and 503s.
"""
