"""`fulcrum econ …` as a user runs it: subprocesses, JSON contracts, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import fulcrum_command

ROOT = Path(__file__).resolve().parents[3]
ADR = str(ROOT / "examples/econ/adr.yaml")
CLAIMS = str(ROOT / "examples/econ/adr-claims.yaml")
EXAMPLE = str(ROOT / "examples/econ/example.yaml")


def econ(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fulcrum_command("econ", *args), capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def econ_json(*args: str) -> dict:
    result = econ(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compare_contract() -> None:
    data = econ_json("compare", "--scenario", ADR, "--volumes", "5e8,2e9,5e9,1e10")
    assert set(data) == {"assumptions", "rows"}
    assert data["assumptions"]["hours_per_month"] == 730
    row = data["rows"][3]
    assert {"volume_tokens", "api_monthly", "self_instances", "self_compute_monthly",
            "self_fixed_monthly", "self_monthly", "api_per_1k", "self_per_1k",
            "cheaper"} <= set(row)  # fmt: skip
    # 1e10 / 3,153,600,000 = 3.17 -> 4 instances x 5.67 x 730
    assert row["self_instances"] == 4
    assert row["self_compute_monthly"] == pytest.approx(4 * 5.67 * 730)
    assert row["api_monthly"] == pytest.approx(5500)
    assert row["cheaper"] == "api"


def test_breakeven_contract() -> None:
    data = econ_json("breakeven", "--scenario", EXAMPLE)
    be = data["break_even"]
    assert set(be) >= {"never", "first_tokens", "sustained_tokens", "intervals"}
    assert be["never"] is False
    assert be["intervals"][-1][1] is None
    assert be["sustained_tokens"] == be["intervals"][-1][0]
    adr = econ_json("breakeven", "--scenario", ADR)
    assert adr["break_even"]["never"] is True
    assert adr["parity_utilization"] == pytest.approx(5.67 / 3.96)


def test_check_on_the_decision_record() -> None:
    data = econ_json("check", "--scenario", ADR, "--claims", CLAIMS)
    by_id = {c["id"]: c for c in data["claims"]}
    assert by_id["blended-price"]["follows"] is True
    assert by_id["on-demand-month"]["follows"] is False
    assert by_id["capacity"]["computed"] == pytest.approx(3_153_600_000)
    assert by_id["table-10b-instances"]["computed"] == 4
    assert data["follows"] + data["does_not_follow"] == len(data["claims"])
    text = econ("check", "--scenario", ADR, "--claims", CLAIMS).stdout
    assert "DOES NOT FOLLOW  on-demand-month: stated 4,082, computed 4,139.10" in text


def test_simulate_and_report(tmp_path: Path) -> None:
    data = econ_json("simulate", "--scenario", EXAMPLE, "--days", "30", "--warm", "0,2")
    names = [s["name"] for s in data["strategies"]]
    assert names == ["managed_only", "peak_sized", "hybrid_warm_0", "hybrid_warm_2"]
    assert data["steps"] == 30 * 1440
    assert data["elapsed_seconds"] < 1.0
    out = tmp_path / "report"
    result = econ("report", "--scenario", EXAMPLE, "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = (out / "index.html").read_text()
    assert page.count("<svg") == 3 and "Every assumption" in page and "<script" not in page


def test_usage_file_drives_simulate_and_triggers(tmp_path: Path) -> None:
    usage = tmp_path / "usage.csv"
    lines = ["hour,workload,backend,tokens"]
    for day in range(30):
        for hour in range(24):
            lines.append(f"2026-03-{day + 1:02d}T{hour:02d}:00:00Z,batch,bedrock,5000000")
    usage.write_text("\n".join(lines) + "\n")
    data = econ_json("simulate", "--scenario", ADR, "--days", "7", "--usage", str(usage))
    assert data["demand_source"] == "measured hourly profile"
    # 7 days x 24 h x 5e6 tokens
    assert data["strategies"][0]["tokens_demand"] == pytest.approx(7 * 24 * 5e6)
    log = tmp_path / "staging.log"
    log.write_text("2025-11-01 start\n2025-12-01 critical outage\n")
    trig = econ_json(
        "triggers", "--scenario", ADR, "--usage", str(usage), "--staging-log", str(log)
    )
    batch, staging, cost = trig["triggers"]
    # 5e6 x 24 x 730/24 = 3.65e9 batch tokens/month in every week: above 2e9
    assert batch["passed"] is True
    assert batch["lowest_monthly_rate"] == pytest.approx(5e6 * 730)
    # window ends 2026-03-31T00:00 (after the last hour): 120 days since 2025-12-01
    assert staging["clean_days"] == pytest.approx(120)
    assert cost["passed"] is False and trig["migrate"] is False


def test_prices() -> None:
    data = econ_json("prices")
    names = {(r["name"], r["region"]) for r in data["prices"]}
    assert ("g5.12xlarge", "sa-east-1") in names and ("p5.48xlarge", "us-east-1") in names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--scenario", ADR, "--volumes", "5e8,lots"], "--volumes: 'lots'"),
        (["compare", "--scenario", ADR, "--volumes", "-5"], "--volumes: '-5'"),
        (["sweep", "--scenario", ADR, "--vary", "utilization=0.3"], "--vary 'utilization=0.3'"),
        (["breakeven", "--scenario", "missing.yaml"], "cannot read scenario missing.yaml"),
        (
            ["triggers", "--scenario", ADR, "--from-ledger", "--store", "sqlite:///nowhere.db"],
            "store sqlite:///nowhere.db: no such file",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = econ(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"fulcrum: {message}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("self_hosted: {utilization: 1.5}\n", "self_hosted.utilization: must be in (0, 1]"),
        ("api: {price_in_per_1k: -0.1}\n", "api.price_in_per_1k: Input should be greater"),
        ("self_hosted: {catalog: g9.huge}\n", "self_hosted.catalog: unknown catalogue entry"),
        ("bogus: 1\n", "bogus: unknown key"),
    ],
)
def test_bad_scenario_is_one_line(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml_text)
    result = econ("breakeven", "--scenario", str(path))
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
