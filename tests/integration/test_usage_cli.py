"""``fulcrum usage`` as an operator runs it: the real CLI in a subprocess, on a ledger filled by
the real writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from fulcrum.store import open_store
from fulcrum.telemetry.ledger import LedgerWriter, UsageEvent
from tests.integration.ledger.events import expected, random_events
from tests.support.servers import fulcrum_command

WINDOW = ["--since", "2026-03-01", "--until", "2026-03-02T00:00:00Z"]


def fulcrum(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fulcrum_command(*args), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def ok(*args: str, cwd: Path) -> str:
    result = fulcrum(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


async def fill(url: str, events: list[UsageEvent]) -> None:
    store = await open_store(url)
    try:
        writer = LedgerWriter(store)
        for item in events:
            writer.record(item)
        assert await writer.flush()
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fulcrum.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def events(url: str) -> list[UsageEvent]:
    filled = random_events(600, seed=42, hours=4)
    asyncio.run(fill(url, filled))
    return filled


def test_json_rows_are_the_ledger_grouped(
    url: str, events: list[UsageEvent], tmp_path: Path
) -> None:
    document = json.loads(
        ok("usage", "--store", url, *WINDOW, "--by", "tenant,model", "--format", "json",
           cwd=tmp_path)
    )  # fmt: skip
    assert document["by"] == ["tenant", "model"]
    assert (document["since"], document["until"]) == (
        "2026-03-01T00:00:00Z",
        "2026-03-02T00:00:00Z",
    )
    assert document["rows"] == [row.as_json() for row in expected(events, ["tenant", "model"])]
    total = document["total"]
    assert total["requests"] == 600
    assert total["input_tokens"] == sum(e.input_tokens for e in events)
    assert total["cost_usd"] == pytest.approx(sum(e.cost_usd for e in events), abs=1e-6)
    assert total["p50_seconds"] <= total["p95_seconds"]


def test_csv_has_a_header_and_one_line_per_group(
    url: str, events: list[UsageEvent], tmp_path: Path
) -> None:
    text = ok("usage", "--store", url, *WINDOW, "--by", "hour", "--format", "csv", cwd=tmp_path)
    records = list(csv.DictReader(io.StringIO(text)))
    assert list(records[0])[:3] == ["hour", "requests", "input_tokens"]
    assert [r["hour"] for r in records] == [f"2026-03-01T{h:02d}:00:00Z" for h in range(9, 13)]
    assert [int(r["requests"]) for r in records] == [
        row.requests for row in expected(events, ["hour"])
    ]


def test_table_has_a_row_per_group_and_a_total(
    url: str, events: list[UsageEvent], tmp_path: Path
) -> None:
    text = ok("usage", "--store", url, *WINDOW, "--by", "deployment", cwd=tmp_path)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["deployment", "requests", "input"]
    assert [line.split()[0] for line in lines[1:]] == ["-", "bedrock-b", "vllm-a", "total"]
    assert lines[-1].split()[1] == "600"
    for line in lines[1:]:  # p50 and p95 close each row: "250ms", "1.25s"
        assert all(re.fullmatch(r"\d+ms|\d+\.\d\ds", cell) for cell in line.split()[-2:]), line


def test_an_empty_window_says_so(url: str, events: list[UsageEvent], tmp_path: Path) -> None:
    text = ok("usage", "--store", url, "--since", "2025-01-01", "--until", "2025-01-02",
              cwd=tmp_path)  # fmt: skip
    assert text == "no usage recorded from 2025-01-01T00:00:00Z to 2025-01-02T00:00:00Z\n"


def test_the_store_comes_from_the_gateway_configuration(tmp_path: Path) -> None:
    asyncio.run(fill(f"sqlite:///{tmp_path / 'gw.db'}", random_events(10, seed=1)))
    config = tmp_path / "gateway.yaml"
    config.write_text("store:\n  url: sqlite:///gw.db\n")  # relative to the file
    other = tmp_path / "elsewhere"
    other.mkdir()
    document = json.loads(
        ok("usage", "--config", str(config), *WINDOW, "--format", "json", cwd=other)
    )
    assert document["total"]["requests"] == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since: invalid time 'yesterday'"),
        (["--since", "5x"], "--since: invalid time '5x'"),
        (["--until", "2020-01-01"], "--until (2020-01-01T00:00:00Z) must be after --since"),
        (["--by", "tenant,colour"], "--by: unknown grouping 'colour'"),
        (["--by", "tenant,,model"], "--by: expected names such as tenant,model"),
        (["--format", "xml"], "--format: must be one of table, json, csv, not 'xml'"),
        (["--store", "sqlite:///nowhere.db"], "store sqlite:///nowhere.db: no such file"),
        (["--store", "mysql://db/x"], "unsupported store URL scheme 'mysql'"),
        (["--config", "missing.yaml"], "cannot read configuration missing.yaml"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = fulcrum("usage", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"fulcrum: {message}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "nowhere.db").exists()  # reading never creates a store
