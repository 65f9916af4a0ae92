"""Keys made with the CLI, used on two replicas sharing one PostgreSQL store, then revoked.

The revocation is done by `fulcrum keys revoke` against the store; both gateway processes
must refuse the key within a few refresh intervals, while a rotated key keeps working.
"""

from __future__ import annotations

import subprocess
import time

import openai
import pytest

from tests.conftest import ServerPool, deployment, metric_value, poll_until
from tests.support.servers import fulcrum_command

REFRESH = 0.5  # auth.refresh_interval of the test gateways (seconds)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fulcrum_command(*args), capture_output=True, text=True, timeout=60, check=True
    )


def _status(client: openai.OpenAI) -> int:
    try:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_a_revoked_key_is_refused_by_every_replica_within_seconds(
    server_pool: ServerPool, postgres_url: str
) -> None:
    emulator = server_pool.emulator("upstream-keys", "--no-latency")
    config = {
        "deployments": {"vllm": deployment(emulator)},
        "models": {"chat": ["vllm"]},
        "store": {"url": postgres_url},
        "auth": {"keys": [], "refresh_interval": REFRESH},
    }
    replicas = [server_pool.gateway(config, api_key=None) for _ in range(2)]
    key = _cli("keys", "create", "--store", postgres_url, "--tenant", "acme").stdout.strip()
    other = _cli("keys", "create", "--store", postgres_url, "--tenant", "acme").stdout.strip()
    key_id = key.split("_")[1]
    # A key created after the replicas started works at once (an unknown id triggers a reload).
    assert [_status(gw.client(api_key=key)) for gw in replicas] == [200, 200]

    rotated = _cli("keys", "rotate", key_id, "--store", postgres_url, "--grace", "1h")
    new_key = rotated.stdout.strip()
    assert new_key.startswith("fk_") and new_key != key
    _cli("keys", "revoke", key_id, "--store", postgres_url)
    revoked_at = time.monotonic()

    def refused_everywhere() -> bool:
        return all(_status(gw.client(api_key=key)) == 401 for gw in replicas)

    poll_until(refused_everywhere, timeout=10 * REFRESH + 5, interval=0.1, what="revocation")
    assert time.monotonic() - revoked_at < 10 * REFRESH + 5
    with pytest.raises(openai.AuthenticationError) as info:
        replicas[0].client(api_key=key).models.list()
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "revoked_api_key"
    # The rotated key and an unrelated key of the same tenant still work on both replicas.
    assert [_status(gw.client(api_key=new_key)) for gw in replicas] == [200, 200]
    assert [_status(gw.client(api_key=other)) for gw in replicas] == [200, 200]
    samples = replicas[1].metrics()
    assert metric_value(samples, "fulcrum_auth_failures_total", reason="revoked_api_key") >= 1
