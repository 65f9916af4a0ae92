"""The Grafana dashboards query only series the gateway really exports.

Every PromQL expression in ``deploy/grafana/*.json`` (panel targets and template variables)
is reduced to the metric names it reads, and each must be a sample name found in a real
``/metrics`` rendering of ``GatewayMetrics`` (plus the audit collector). A renamed metric, a
typo, or a panel written for a series that does not exist fails here, not in front of an
operator at 3 a.m.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fulcrum.providers.base import Usage
from fulcrum.telemetry.audit import AuditStatus
from fulcrum.telemetry.audit.shipper import ShipperStats
from fulcrum.telemetry.audit.spool import SpoolDepth, SpoolStats
from fulcrum.telemetry.audit_metrics import AuditCollector
from fulcrum.telemetry.metrics import GatewayMetrics

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
PROMETHEUS = "prometheus"
POSTGRES = "grafana-postgresql-datasource"
Dashboard = dict[str, Any]

# -- PromQL: just enough of a tokenizer to find the metric names ------------------------------

AGGREGATIONS = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    }
)  # fmt: skip
FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max",
        "clamp_min", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta",
        "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
        "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
        "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
        "label_join", "label_replace", "ln", "log2", "log10", "minute", "month",
        "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
        "sort_by_label", "sort_by_label_desc", "sqrt", "time", "timestamp", "vector", "year",
        "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
        "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
        "present_over_time", "mad_over_time", "acos", "acosh", "asin", "asinh", "atan",
        "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
    }
)  # fmt: skip
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "start", "end", "inf", "nan", "atan2"}
)
# Modifiers whose parenthesised list holds label names, not expressions.
LABEL_LISTS = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[a-z]*|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<other>\S)"
)
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<arg>.*?)\s*(?:,\s*[A-Za-z_]\w*\s*)?\)\s*$")
OTHER_VARIABLE_QUERIES = re.compile(r"^\s*(label_names|metrics|query_result)\(")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads; raises on a call to an unknown function."""
    match = LABEL_VALUES.match(expr)
    if match:  # a template variable: label_values(metric{…}, label) or label_values(label)
        arg = match["arg"]
        return metric_names(arg) if "{" in arg or "," in expr else set()
    if OTHER_VARIABLE_QUERIES.match(expr):
        raise AssertionError(f"unsupported variable query, extend the test: {expr}")
    text = STRINGS.sub('""', expr)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "1", text)  # Grafana variables ($__range, ${x:regex})
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery selectors
    text = LABEL_LISTS.sub(" ", text)
    names: set[str] = set()
    tokens = list(TOKEN.finditer(text))
    for index, token in enumerate(tokens):
        name = token["name"]
        if name is None:
            continue
        following = tokens[index + 1]["other"] if index + 1 < len(tokens) else None
        if following == "(":
            if name.lower() not in AGGREGATIONS | FUNCTIONS:
                raise AssertionError(f"unknown PromQL function {name!r} in: {expr}")
            continue
        if name.lower() in KEYWORDS or name.lower() in AGGREGATIONS:
            continue
        names.add(name)
    return names


# -- dashboards --------------------------------------------------------------------------------


@cache
def _load(path: Path) -> Dashboard:
    board: Dashboard = json.loads(path.read_text(encoding="utf-8"))
    return board


def load_dashboards() -> dict[str, Dashboard]:
    """Every dashboard in ``deploy/grafana``, by file name."""
    return {path.name: _load(path) for path in DASHBOARDS}


def all_panels(board: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def datasource_type(board: Dashboard, source: Any) -> str:
    """The plugin type of a datasource reference: ``${DS_X}`` resolves through ``__inputs``."""
    if isinstance(source, dict):
        if source.get("type"):
            return str(source["type"])
        source = source.get("uid")
    for item in board.get("__inputs", []):
        if source in (f"${{{item['name']}}}", f"${item['name']}"):
            return str(item["pluginId"])
    raise AssertionError(f"unresolvable datasource {source!r}")


def targets_of(board: Dashboard, plugin: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query that runs on a datasource of type ``plugin``."""
    for panel in all_panels(board):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource")
            if datasource_type(board, source) == plugin:
                yield panel.get("title", "?"), target


def promql(board: Dashboard) -> Iterator[tuple[str, str]]:
    """(where, expression) of every PromQL query: panel targets and template variables."""
    for title, target in targets_of(board, PROMETHEUS):
        yield f"panel {title!r}", target["expr"]
    for variable in board.get("templating", {}).get("list", []):
        source = variable.get("datasource")
        if variable.get("type") == "query" and datasource_type(board, source) == PROMETHEUS:
            query = variable["query"]
            yield (
                f"variable ${variable['name']}",
                query if isinstance(query, str) else query["query"],
            )


def sql_targets(board: Dashboard) -> Iterator[tuple[str, str]]:
    """(where, SQL) of every query on the usage-ledger (PostgreSQL) datasource."""
    for title, target in targets_of(board, POSTGRES):
        yield f"panel {title!r}", target["rawSql"]
    for variable in board.get("templating", {}).get("list", []):
        source = variable.get("datasource")
        if variable.get("type") == "query" and datasource_type(board, source) == POSTGRES:
            yield f"variable ${variable['name']}", variable["query"]


def unknown_metrics(board: Dashboard, exported: frozenset[str]) -> dict[str, set[str]]:
    """Per query, the metric names it reads that the gateway does not export."""
    unknown = {}
    for where, expr in promql(board):
        missing = metric_names(expr) - exported
        if missing:
            unknown[f"{where}: {expr}"] = missing
    return unknown


# -- what the gateway exports ------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "gauge": ("",),
    "stateset": ("",),
    "unknown": ("",),
}


def _audit_status() -> AuditStatus:
    return AuditStatus(
        depth=SpoolDepth(closed_segments=2, closed_bytes=2048, open_bytes=100, oldest_time=1.0),
        lag_seconds=12.5,
        spool=SpoolStats(records=10),
        shipper=ShipperStats(uploads=1, uploaded_records=8, failures=1),
    )


@cache
def exposition() -> str:
    """``/metrics`` of a gateway that served a little traffic, as Prometheus scrapes it."""
    metrics = GatewayMetrics()
    metrics.registry.register(AuditCollector(_audit_status))
    usage = Usage(input_tokens=100, output_tokens=20, cached_tokens=50)
    metrics.record_request("llama", "vllm-a", 200, 0.8, 0.1, usage, 0.002)
    metrics.record_request("llama", "-", 429, 0.001, None, None, 0.0)
    metrics.count_decision("llama", "vllm-a", "interactive")
    metrics.count_attempt("bedrock-pt", "provisioned_full")
    metrics.count_attempt("vllm-a", "ok")
    metrics.set_circuit("vllm-a", "closed")
    metrics.set_health("vllm-a", True)
    metrics.provisioned_utilization.labels("bedrock-pt").set(0.7)
    metrics.upstream_load.labels("vllm-a").set(3)
    metrics.auth_failures.labels("invalid_api_key").inc()
    metrics.ratelimit_rejections.labels("rpm", "tenant").inc()
    metrics.ratelimit_backend_errors.labels("fail_open").inc()
    metrics.cache_lookups.labels("hit").inc()
    metrics.cache_stores.labels("stored").inc()
    metrics.cache_errors.labels("lookup").inc()
    metrics.cache_saved_usd.inc(0.001)
    return metrics.render().decode()


@cache
def exported_samples() -> frozenset[str]:
    """Every sample name the gateway exports.

    Names come from the samples rendered; a labelled family that the traffic above did not
    touch (one added later) still counts, with the sample names its type always has.
    """
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition()):
        if family.samples:
            names.update(sample.name for sample in family.samples)
        else:
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


# -- tests -------------------------------------------------------------------------------------


def test_there_are_dashboards() -> None:
    assert {path.name for path in DASHBOARDS} >= {"gateway.json", "cost.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_queries_only_exported_metrics(path: Path) -> None:
    board = _load(path)
    assert list(promql(board)), "a dashboard without PromQL queries"
    assert unknown_metrics(board, exported_samples()) == {}


def test_a_metric_the_gateway_does_not_export_is_caught() -> None:
    board = json.loads(json.dumps(_load(GRAFANA / "gateway.json")))
    panel = next(p for p in all_panels(board) if p.get("targets"))
    panel["targets"].append(
        {"refId": "Z", "expr": 'sum by (le) (rate(fulcrum_request_latency_bucket{model="x"}[5m]))'}
    )
    assert unknown_metrics(board, exported_samples()) == {
        f"panel {panel['title']!r}: {panel['targets'][-1]['expr']}": {
            "fulcrum_request_latency_bucket"
        }
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'histogram_quantile(0.95, sum by (le, d) (rate(x_bucket{a="b"}[$__rate_interval])))',
            {"x_bucket"},
        ),
        ("sum without (instance) (a) / ignoring (kind) group_left (model) b", {"a", "b"}),
        ('3600 * sum(rate(cost_total{m=~"$model"}[5m])) / 1e9', {"cost_total"}),
        ("rate(a[5m] offset 1h) and on (deployment) group by (deployment) (b)", {"a", "b"}),
        ('label_replace(a, "dst", "${1}xx", "status", "(rate|sum)")', {"a"}),
        ("max_over_time(sum(a)[1h:5m]) > bool 0.5", {"a"}),
        ('avg by (d) (avg_over_time(u{d=~"$d"}[$__range]))', {"u"}),
        ("label_values(fulcrum_requests_total, model)", {"fulcrum_requests_total"}),
        ('label_values(fulcrum_requests_total{model="x"}, status)', {"fulcrum_requests_total"}),
        ("label_values(model)", set()),
        ("ns:metric:rate5m", {"ns:metric:rate5m"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_an_unknown_function_is_reported() -> None:
    with pytest.raises(AssertionError, match="unknown PromQL function 'fulcrum_requests_total'"):
        metric_names("fulcrum_requests_total(5m)")


def test_the_exposition_is_fulcrum_named_and_has_no_tenant_label() -> None:
    families = list(text_string_to_metric_families(exposition()))
    assert {family.name for family in families if not family.name.startswith("fulcrum_")} == set()
    labels = {key for family in families for sample in family.samples for key in sample.labels}
    assert "tenant" not in labels
    # The names the dashboards rely on most exist with their suffixes.
    assert {
        "fulcrum_requests_total",
        "fulcrum_request_duration_seconds_bucket",
        "fulcrum_time_to_first_token_seconds_bucket",
        "fulcrum_audit_shipping_lag_seconds",
    } <= exported_samples()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_no_promql_filters_or_groups_by_tenant(path: Path) -> None:
    for where, expr in promql(_load(path)):
        assert "tenant" not in STRINGS.sub('""', expr), f"{where}: tenant is not a label"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panel_ids_are_unique(path: Path) -> None:
    ids = [panel["id"] for panel in all_panels(_load(path))]
    assert len(ids) == len(set(ids)), sorted(ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_has_a_datasource_and_a_query(path: Path) -> None:
    board = _load(path)
    for panel in all_panels(board):
        if panel["type"] == "row":
            continue
        title = panel.get("title")
        assert panel.get("datasource"), f"panel {title!r} has no datasource"
        assert datasource_type(board, panel["datasource"]) in {PROMETHEUS, POSTGRES}
        assert panel.get("targets"), f"panel {title!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {title!r}: duplicate refIds"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_shape(path: Path) -> None:
    board = _load(path)
    assert board["schemaVersion"] >= 39
    assert board["uid"].startswith("fulcrum-") and board["title"]
    assert board["id"] is None  # importable anywhere
    inputs = {item["name"]: item["pluginId"] for item in board["__inputs"]}
    assert inputs["DS_PROMETHEUS"] == PROMETHEUS
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    # Provisioned from files (no import step), ${DS_…} resolves through these variables.
    for name, plugin in inputs.items():
        assert variables[name]["type"] == "datasource" and variables[name]["query"] == plugin
    for name in ("model", "deployment"):
        assert variables[name]["query"]["query"].startswith("label_values(")
    cells: dict[tuple[int, int], str] = {}  # panels sit on the 24-column grid, no overlap
    for panel in all_panels(board):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_uids_are_distinct() -> None:
    uids = [board["uid"] for board in load_dashboards().values()]
    assert len(uids) == len(set(uids))


def test_tenant_spend_comes_from_the_ledger() -> None:
    board = _load(GRAFANA / "cost.json")
    queries = dict(sql_targets(board))
    tenant_panels = [where for where, sql in queries.items() if "tenant" in where.lower()]
    assert tenant_panels, "no spend-by-tenant panel"
    for where, sql in queries.items():
        assert "usage_ledger" in sql, where
        if where.startswith("panel"):
            assert "$__timeFilter(hour)" in sql, f"{where}: not limited to the time range"
