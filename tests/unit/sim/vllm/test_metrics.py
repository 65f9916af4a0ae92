"""Metric families carry vLLM's names, types, labels and buckets, in a private registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fulcrum.sim.vllm.engine import Snapshot
from fulcrum.sim.vllm.metrics import (
    TIME_TO_FIRST_TOKEN_BUCKETS,
    VllmMetrics,
    one_two_five_buckets,
)


def test_one_two_five_buckets_stop_at_the_maximum() -> None:
    assert one_two_five_buckets(100) == [1, 2, 5, 10, 20, 50, 100]
    assert one_two_five_buckets(4096)[-1] == 2000


def test_two_instances_do_not_share_series() -> None:
    first = VllmMetrics("a", 1024)
    second = VllmMetrics("b", 1024)
    first.finished(
        e2e_seconds=1, queue_seconds=0, prompt_tokens=5, generated_tokens=[3], reasons=["stop"]
    )
    text = second.render(Snapshot(0, 0, 0, 1)).decode()
    assert 'model_name="a"' not in text
    assert 'vllm:prompt_tokens_total{engine="0",model_name="b"} 0.0' in text


def test_render_reports_gauges_counters_and_histograms() -> None:
    metrics = VllmMetrics("m", 1024)
    metrics.first_token(0.03)
    metrics.finished(
        e2e_seconds=0.4,
        queue_seconds=0.1,
        prompt_tokens=7,
        generated_tokens=[3, 4],
        reasons=["stop", "length"],
    )
    families = {
        f.name: f
        for f in text_string_to_metric_families(metrics.render(Snapshot(3, 2, 50, 200)).decode())
    }
    assert families["vllm:num_requests_running"].samples[0].value == 3
    assert families["vllm:num_requests_waiting"].samples[0].value == 2
    assert families["vllm:kv_cache_usage_perc"].samples[0].value == 0.25
    assert families["vllm:gpu_cache_usage_perc"].samples[0].value == 0.25
    assert families["vllm:generation_tokens"].type == "counter"
    totals = [s for s in families["vllm:generation_tokens"].samples if s.name.endswith("_total")]
    assert totals[0].value == 7
    success = {
        s.labels["finished_reason"]: s.value
        for s in families["vllm:request_success"].samples
        if s.name.endswith("_total")
    }
    assert success == {"stop": 1, "length": 1, "abort": 0, "error": 0}
    ttft = families["vllm:time_to_first_token_seconds"]
    assert ttft.type == "histogram"
    bounds = [float(s.labels["le"]) for s in ttft.samples if s.name.endswith("_bucket")]
    assert bounds[:-1] == list(TIME_TO_FIRST_TOKEN_BUCKETS)
    for family in families.values():
        for sample in family.samples:
            assert sample.labels["model_name"] == "m"
            assert sample.labels["engine"] == "0"
