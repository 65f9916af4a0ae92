"""Raw HTTP against the emulator: SSE framing, error bodies, utility routes, /metrics."""

from __future__ import annotations

import base64
import json
import struct

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.sim.conftest import MODEL
from tests.integration.sim.helpers import Sim, http, metric_values, sse_events

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


def test_sse_framing_is_exactly_vllms(vllm: Sim) -> None:
    reply = http("POST", f"{vllm.url}/v1/chat/completions", {**CHAT, "stream": True})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert reply.body.endswith(b"data: [DONE]\n\n")
    events = sse_events(reply.body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 1 + 3  # role chunk + one chunk per token
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert "stop_reason" in chunks[-1]["choices"][0]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in chunks)


def test_malformed_json_and_missing_fields_are_400(vllm: Sim) -> None:
    bad = http("POST", f"{vllm.url}/v1/chat/completions", raw=b"{not json")
    assert bad.status == 400
    error = bad.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("BadRequestError", 400)
    missing = http("POST", f"{vllm.url}/v1/chat/completions", {"model": MODEL})
    assert missing.status == 400
    assert "messages" in missing.json()["error"]["message"]
    no_prompt = http("POST", f"{vllm.url}/v1/completions", {"model": MODEL})
    assert no_prompt.status == 400


def test_health_version_models(vllm: Sim) -> None:
    health = http("GET", f"{vllm.url}/health")
    assert (health.status, health.body) == (200, b"")
    assert isinstance(http("GET", f"{vllm.url}/version").json()["version"], str)
    models = http("GET", f"{vllm.url}/v1/models").json()
    assert models["object"] == "list"
    card = models["data"][0]
    assert (card["id"], card["object"], card["max_model_len"]) == (MODEL, "model", 512)


def test_tokenize_matches_usage_and_detokenize_round_trips_generated_text(vllm: Sim) -> None:
    result = http("POST", f"{vllm.url}/v1/chat/completions", {**CHAT, "max_tokens": 6}).json()
    tokenized = http(
        "POST", f"{vllm.url}/tokenize", {"model": MODEL, "messages": CHAT["messages"]}
    ).json()
    assert tokenized["count"] == result["usage"]["prompt_tokens"] == len(tokenized["tokens"])
    assert tokenized["max_model_len"] == 512
    text = result["choices"][0]["message"]["content"]
    ids = http(
        "POST",
        f"{vllm.url}/tokenize",
        {"prompt": text, "add_special_tokens": False, "return_token_strs": True},
    ).json()
    assert ids["count"] == result["usage"]["completion_tokens"]
    back = http("POST", f"{vllm.url}/detokenize", {"tokens": ids["tokens"]}).json()
    assert back["prompt"] == text


def test_embeddings_base64_decodes_to_the_float_vector(vllm: Sim) -> None:
    body = {"model": MODEL, "input": "some text"}
    floats = http("POST", f"{vllm.url}/v1/embeddings", body).json()
    encoded = http("POST", f"{vllm.url}/v1/embeddings", {**body, "encoding_format": "base64"})
    vector = floats["data"][0]["embedding"]
    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(vector)}f", raw)
    assert all(abs(a - b) < 1e-6 for a, b in zip(decoded, vector, strict=True))
    assert floats["id"].startswith("embd-")
    assert floats["usage"]["completion_tokens"] == 0


def test_metrics_have_vllm_names_types_and_labels(vllm: Sim) -> None:
    before = metric_values(vllm.url)
    result = http("POST", f"{vllm.url}/v1/chat/completions", CHAT).json()
    reply = http("GET", f"{vllm.url}/metrics")
    assert reply.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    expected = {
        "vllm:num_requests_running": "gauge",
        "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:gpu_cache_usage_perc": "gauge",
        "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter",
        "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
    }
    for name, kind in expected.items():
        assert families[name].type == kind, name
        assert all(s.labels.get("model_name") == MODEL for s in families[name].samples), name
    reasons = {
        s.labels["finished_reason"]
        for s in families["vllm:request_success"].samples
        if s.name == "vllm:request_success_total"
    }
    assert {"stop", "length", "abort"} <= reasons
    ttft_buckets = [
        s.labels["le"]
        for s in families["vllm:time_to_first_token_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert ttft_buckets[:3] == ["0.001", "0.005", "0.01"]

    after = metric_values(vllm.url)
    labels = (("engine", "0"), ("model_name", MODEL))

    def delta(name: str) -> float:
        return after[(name, labels)] - before[(name, labels)]

    assert delta("vllm:prompt_tokens_total") == result["usage"]["prompt_tokens"]
    assert delta("vllm:generation_tokens_total") == result["usage"]["completion_tokens"]
    assert delta("vllm:e2e_request_latency_seconds_count") == 1
    assert delta("vllm:time_to_first_token_seconds_count") == 1
    length = (*labels[:1], ("finished_reason", "length"), labels[1])
    assert (
        after[("vllm:request_success_total", length)]
        - before[("vllm:request_success_total", length)]
        == 1
    )
