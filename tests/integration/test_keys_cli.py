"""``fulcrum keys`` and ``fulcrum tenants`` as an operator runs them: the real CLI in a
subprocess, against a real store, checked through the gateway's own authenticator."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import Principal
from fulcrum.auth.store_keys import StoreKeyAuthenticator
from fulcrum.auth.tenants import TenantDirectory
from fulcrum.cli import main
from fulcrum.store import open_store
from tests.support.servers import free_port, fulcrum_command


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def fulcrum(*args: str, cwd: Path) -> Run:
    result = subprocess.run(
        fulcrum_command(*args), cwd=cwd, capture_output=True, text=True, timeout=60
    )
    return Run(result.returncode, result.stdout, result.stderr)


def ok(*args: str, cwd: Path) -> Run:
    run = fulcrum(*args, cwd=cwd)
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run


async def verify(url: str, token: str) -> Principal | str:
    """What a gateway on this store says about the key: the principal or the 401 code."""
    store = await open_store(url)
    try:
        keys = StoreKeyAuthenticator(store)
        await keys.reload()
        try:
            return await keys.verify(token)
        except ApiError as error:
            return str(error.code)
    finally:
        await store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


async def test_a_created_key_is_printed_once_and_verifies(tmp_path: Path, url: str) -> None:
    run = ok(
        "keys", "create", "--store", url, "--tenant", "acme", "--name", "billing",
        "--scopes", "chat,embeddings", "--expires", "30d", cwd=tmp_path,
    )  # fmt: skip
    token = run.stdout.strip()
    assert run.stdout == token + "\n"
    assert token.startswith("fk_")
    key_id = token.split("_")[1]
    assert key_id in run.stderr and "acme" in run.stderr
    assert token not in run.stderr
    principal = await verify(url, token)
    assert isinstance(principal, Principal)
    assert (principal.tenant, principal.subject, principal.key_id) == ("acme", "billing", key_id)
    assert principal.scopes == frozenset({"chat", "embeddings"})


async def test_json_output_of_create(tmp_path: Path, url: str) -> None:
    run = ok("keys", "create", "--store", url, "--tenant", "acme", "--format", "json",
             cwd=tmp_path)  # fmt: skip
    created = json.loads(run.stdout)
    assert created["tenant"] == "acme" and created["status"] == "active"
    assert created["expires_at"] is None and created["scopes"] == []
    assert created["key"].startswith(f"fk_{created['key_id']}_")
    assert isinstance(await verify(url, created["key"]), Principal)


def test_list_shows_keys_but_never_a_secret(tmp_path: Path, url: str) -> None:
    tokens = [
        ok("keys", "create", "--store", url, "--tenant", tenant, cwd=tmp_path).stdout.strip()
        for tenant in ("acme", "globex")
    ]
    table = ok("keys", "list", "--store", url, cwd=tmp_path).stdout
    listed = ok("keys", "list", "--store", url, "--format", "json", cwd=tmp_path).stdout
    only_acme = json.loads(
        ok("keys", "list", "--store", url, "--tenant", "acme", "--format", "json",
           cwd=tmp_path).stdout
    )  # fmt: skip
    for token in tokens:
        key_id, secret = token.split("_")[1], token.split("_", 2)[2]
        assert key_id in table and key_id in listed
        assert secret not in table and secret not in listed
    assert table.splitlines()[0].split() == [
        "KEY_ID", "TENANT", "NAME", "SCOPES", "CREATED", "EXPIRES", "STATUS"
    ]  # fmt: skip
    assert {entry["tenant"] for entry in json.loads(listed)} == {"acme", "globex"}
    assert [entry["tenant"] for entry in only_acme] == ["acme"]
    assert not any("salt" in entry or "digest" in entry for entry in json.loads(listed))


async def test_revoke_stops_the_key_and_hides_it_from_the_default_list(
    tmp_path: Path, url: str
) -> None:
    token = ok("keys", "create", "--store", url, "--tenant", "acme", cwd=tmp_path).stdout.strip()
    key_id = token.split("_")[1]
    assert "Revoked" in ok("keys", "revoke", key_id, "--store", url, cwd=tmp_path).stdout
    assert await verify(url, token) == "revoked_api_key"
    assert key_id not in ok("keys", "list", "--store", url, cwd=tmp_path).stdout
    everything = ok("keys", "list", "--store", url, "--all", cwd=tmp_path).stdout
    assert key_id in everything and "revoked" in everything
    again = ok("keys", "revoke", key_id, "--store", url, cwd=tmp_path)
    assert "already revoked" in again.stdout


async def test_rotate_without_grace_revokes_the_old_key(tmp_path: Path, url: str) -> None:
    old = ok("keys", "create", "--store", url, "--tenant", "acme", "--name", "ci",
             "--scopes", "chat", cwd=tmp_path).stdout.strip()  # fmt: skip
    run = ok("keys", "rotate", old.split("_")[1], "--store", url, cwd=tmp_path)
    new = run.stdout.strip()
    assert new != old and new.startswith("fk_")
    assert "revoked" in run.stderr
    assert await verify(url, old) == "revoked_api_key"
    principal = await verify(url, new)
    assert isinstance(principal, Principal)
    assert (principal.tenant, principal.subject, principal.scopes) == (
        "acme",
        "ci",
        frozenset({"chat"}),
    )


async def test_rotate_with_grace_keeps_the_old_key_working_until_then(
    tmp_path: Path, url: str
) -> None:
    old = ok("keys", "create", "--store", url, "--tenant", "acme", cwd=tmp_path).stdout.strip()
    old_id = old.split("_")[1]
    run = ok("keys", "rotate", old_id, "--grace", "1h", "--store", url, cwd=tmp_path)
    assert "keeps working until" in run.stderr
    assert isinstance(await verify(url, old), Principal)
    assert isinstance(await verify(url, run.stdout.strip()), Principal)
    listed = json.loads(ok("keys", "list", "--store", url, "--format", "json", cwd=tmp_path).stdout)
    old_entry = next(entry for entry in listed if entry["key_id"] == old_id)
    assert old_entry["expires_at"] is not None and old_entry["status"] == "active"


async def test_the_default_store_is_fulcrum_db_in_the_current_directory(tmp_path: Path) -> None:
    token = ok("keys", "create", "--tenant", "acme", cwd=tmp_path).stdout.strip()
    assert (tmp_path / "fulcrum.db").exists()
    assert isinstance(await verify(f"sqlite:///{tmp_path / 'fulcrum.db'}", token), Principal)


async def test_config_names_the_store_relative_to_its_own_directory(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "gateway.yaml").write_text(
        "store:\n  url: sqlite:///gateway.db\n"
        "auth:\n  keys:\n    - key: ${NOT_SET_WHEN_MANAGING_KEYS}\n      tenant: acme\n"
    )
    run = ok("keys", "create", "--config", "etc/gateway.yaml", "--tenant", "acme", cwd=tmp_path)
    assert (config_dir / "gateway.db").exists()
    url = f"sqlite:///{config_dir / 'gateway.db'}"
    assert isinstance(await verify(url, run.stdout.strip()), Principal)
    # --store wins over --config
    other = tmp_path / "other.db"
    ok("keys", "list", "--config", "etc/gateway.yaml", "--store", f"sqlite:///{other}",
       cwd=tmp_path)  # fmt: skip
    assert other.exists()


async def test_keys_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    token = ok("keys", "create", "--store", postgres_url, "--tenant", "acme",
               cwd=tmp_path).stdout.strip()  # fmt: skip
    assert isinstance(await verify(postgres_url, token), Principal)
    ok("keys", "revoke", token.split("_")[1], "--store", postgres_url, cwd=tmp_path)
    assert await verify(postgres_url, token) == "revoked_api_key"


async def test_tenant_policies_round_trip_and_reach_the_gateway(tmp_path: Path, url: str) -> None:
    policy = tmp_path / "globex.yaml"
    policy.write_text("models: [llama]\nlimits:\n  rpm: 60\n  per_key: {tpm: 1000}\n")
    assert "Created" in ok("tenants", "set", "globex", "--file", str(policy), "--store", url,
                           cwd=tmp_path).stdout  # fmt: skip
    ok("tenants", "set", "initech", "--json", '{"data_policy": {"vpc_only": true}}',
       "--store", url, cwd=tmp_path)  # fmt: skip
    shown = json.loads(
        ok("tenants", "show", "globex", "--format", "json", "--store", url, cwd=tmp_path).stdout
    )
    assert shown == {"models": ["llama"], "limits": {"rpm": 60, "per_key": {"tpm": 1000}}}
    assert "rpm: 60" in ok("tenants", "show", "globex", "--store", url, cwd=tmp_path).stdout
    table = ok("tenants", "list", "--store", url, cwd=tmp_path).stdout
    assert "globex" in table and "initech" in table and "vpc_only" in table

    store = await open_store(url)
    try:
        directory = TenantDirectory({}, store)
        await directory.reload()
        globex = directory.policy("globex")
        assert globex is not None and globex.limits.per_key.tpm == 1000
        ok("tenants", "delete", "globex", "--store", url, cwd=tmp_path)
        await directory.reload()
        assert directory.policy("globex") is None and directory.knows("initech")
    finally:
        await store.close()


# -- every mistake: one line, exit 2, no traceback --------------------------------------------


@dataclass(frozen=True)
class Mistake:
    args: tuple[str, ...]
    names: tuple[str, ...]
    """Substrings the one-line message must contain."""


def mistakes(url: str, tmp_path: Path) -> dict[str, Mistake]:
    unreachable = f"postgresql://fulcrum:pw-xyz@127.0.0.1:{free_port()}/fulcrum"
    bad_policy = tmp_path / "bad-policy.yaml"
    bad_policy.write_text("limits:\n  per_model:\n    llama: {rpm: 0}\n")
    store = ("--store", url)
    return {
        "unknown key id": Mistake(("keys", "revoke", "abcdef012345", *store), ("abcdef012345",)),
        "malformed key id": Mistake(("keys", "revoke", "NOT-AN-ID", *store), ("NOT-AN-ID",)),
        "rotate unknown": Mistake(("keys", "rotate", "abcdef012345", *store), ("abcdef012345",)),
        "bad expiry": Mistake(
            ("keys", "create", "--tenant", "acme", "--expires", "soon", *store), ("--expires",)
        ),
        "past expiry": Mistake(
            ("keys", "create", "--tenant", "acme", "--expires", "2001-01-01", *store),
            ("--expires", "future"),
        ),
        "bad grace": Mistake(
            ("keys", "rotate", "abcdef012345", "--grace", "1 hour", *store), ("--grace",)
        ),
        "bad scope": Mistake(
            ("keys", "create", "--tenant", "acme", "--scopes", "chat,admin", *store),
            ("admin", "chat, completions, embeddings, models"),
        ),
        "bad tenant": Mistake(("keys", "create", "--tenant", "-x y", *store), ("--tenant",)),
        "unreadable policy": Mistake(
            ("tenants", "set", "acme", "--file", str(tmp_path / "missing.yaml"), *store),
            ("missing.yaml",),
        ),
        "invalid policy": Mistake(
            ("tenants", "set", "acme", "--file", str(bad_policy), *store),
            ("limits.per_model.llama.rpm",),
        ),
        "invalid json": Mistake(("tenants", "set", "acme", "--json", "{", *store), ("--json",)),
        "policy not a mapping": Mistake(
            ("tenants", "set", "acme", "--json", "[1]", *store), ("mapping",)
        ),
        "unknown tenant": Mistake(("tenants", "show", "nobody", *store), ("nobody",)),
        "delete unknown tenant": Mistake(("tenants", "delete", "nobody", *store), ("nobody",)),
        "unreachable database": Mistake(("keys", "list", "--store", unreachable), ("127.0.0.1",)),
        "unsupported store": Mistake(("keys", "list", "--store", "mysql://x/y"), ("mysql",)),
        "missing config": Mistake(
            ("keys", "list", "--config", str(tmp_path / "nope.yaml")), ("nope.yaml",)
        ),
    }


def one_line_failure(code: int, stderr: str, names: tuple[str, ...]) -> str | None:
    """None when the failure is as promised, else what is wrong with it."""
    lines = stderr.splitlines()
    good = (
        code == 2
        and len(lines) == 1
        and lines[0].startswith("fulcrum: ")
        and "Traceback" not in stderr
        and all(part in lines[0] for part in names)
        and "pw-xyz" not in stderr
    )
    return None if good else f"exit {code}, stderr {stderr!r}"


@pytest.fixture
def revoked_key_id(tmp_path: Path, url: str) -> str:
    token = ok("keys", "create", "--store", url, "--tenant", "acme", cwd=tmp_path).stdout
    key_id = token.strip().split("_")[1]
    ok("keys", "revoke", key_id, "--store", url, cwd=tmp_path)
    return key_id


def test_every_mistake_is_one_line_and_exit_2(
    tmp_path: Path, url: str, revoked_key_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole table in-process (the same ``main`` the console script runs), for speed."""
    cases = mistakes(url, tmp_path)
    cases["rotate revoked"] = Mistake(
        ("keys", "rotate", revoked_key_id, "--store", url), ("revoked",)
    )
    failures = []
    for name, case in cases.items():
        code = main(list(case.args))
        problem = one_line_failure(code, capsys.readouterr().err, case.names)
        if problem:
            failures.append(f"{name}: {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "name", ["unknown key id", "invalid policy", "unreachable database", "bad scope"]
)
def test_mistakes_in_a_real_process_end_the_same_way(name: str, tmp_path: Path, url: str) -> None:
    case = mistakes(url, tmp_path)[name]
    run = fulcrum(*case.args, cwd=tmp_path)
    problem = one_line_failure(run.code, run.stderr, case.names)
    assert problem is None, problem
