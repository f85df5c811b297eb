"""The CLI as a client of the API: run from a folder with no ``.movingdata/`` and no service
credential in its environment, with only a profile written by ``movingdata login``, it puts
(files, a folder, stdin), lists, shows, restores bit for bit (to a file and to stdout),
removes and tails the trail, which names its token; refusals exit with their documented code
and one line."""

import os
import stat
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import scoped
from tests.pipeline import MOVINGDATA, Pipeline
from workers.client.state import State


@pytest.fixture
def user(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A user's folder and environment: PATH and HOME, nothing of the fleet's."""
    home = tmp_path / "user"
    home.mkdir()
    return home, {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}


def run(
    user: tuple[Path, dict[str, str]], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    home, env = user
    return subprocess.run(
        [MOVINGDATA, *args], cwd=home, env=env, input=stdin, capture_output=True, timeout=300
    )


def lines(out: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


async def test_the_cli_speaks_the_api_with_only_its_profile(
    pipeline: Pipeline, api: str, state: State, user: tuple[Path, dict[str, str]]
) -> None:
    home, env = user
    assert not any(k.startswith("MOVINGDATA_") for k in env)
    (home / "token").write_text(scoped(pipeline, "cli-user", "--role", "writer") + "\n")
    login = run(user, "login", api, "--token-file", "token")
    assert login.returncode == 0, login.stderr
    assert b"as api:cli-user (tenant default; read, write, delete)" in login.stdout
    profile = home / ".config" / "movingdata" / "profiles.json"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert not (home / ".movingdata").exists()

    data = os.urandom(3 * 1024 * 1024 + 17)
    (home / "big.bin").write_bytes(data)
    folder = home / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"d{n}.txt").write_bytes(f"document {n}\n".encode() * 100)
    put = run(user, "put", "big.bin", "docs", "--prefix", "cli/", "--wait", "--json")
    assert put.returncode == 0, put.stderr
    outcomes = {d["name"]: d["outcome"] for d in lines(put.stdout)}
    assert outcomes == {
        "cli/big.bin": "verified",
        "cli/d0.txt": "verified",
        "cli/d1.txt": "verified",
        "cli/d2.txt": "verified",
    }
    piped = run(user, "put", "-", "--name", "cli/piped.bin", "--wait", stdin=b"from a pipe\n")
    assert piped.returncode == 0, piped.stderr

    listed = run(user, "ls", "cli/", "--limit", "2", "--json")
    assert [r["name"] for r in lines(listed.stdout)] == ["cli/big.bin", "cli/d0.txt"]
    assert orjson.loads(listed.stderr) == {"next_after": "cli/d0.txt"}  # never in the rows
    shown = lines(run(user, "show", "cli/big.bin", "--json").stdout)
    assert [(v["version"], v["state"]) for v in shown] == [(1, "verified")]

    restored = run(user, "restore", "cli/big.bin", "-o", "back.bin", "--from", "azure")
    assert restored.returncode == 0, restored.stderr
    assert (home / "back.bin").read_bytes() == data
    assert stat.S_IMODE((home / "back.bin").stat().st_mode) == 0o600
    to_stdout = run(user, "restore", "cli/piped.bin", "-o", "-")
    assert to_stdout.returncode == 0 and to_stdout.stdout == b"from a pipe\n"

    shared = run(user, "share", "cli/big.bin", "--expires", "10m", "--json")
    assert shared.returncode == 0, shared.stderr
    link = orjson.loads(shared.stdout)
    assert httpx.get(str(link["url"]), timeout=60).content == data  # no token: the URL is it
    listed_links = lines(run(user, "share", "list", "cli/big.bin", "--json").stdout)
    assert [x["link_id"] for x in listed_links] == [link["link_id"]]
    assert run(user, "share", "revoke", str(link["link_id"])).returncode == 0
    assert httpx.get(str(link["url"]), timeout=60).status_code == 410

    held = run(user, "hold", "cli/d1.txt", "--legal", "--reason", "audit 2027")
    assert held.returncode == 0 and b"legal hold" in held.stdout, held.stderr
    refused = run(user, "rm", "cli/d1.txt")
    assert refused.returncode == 4 and b"held" in refused.stderr, refused.stderr
    assert run(user, "release", "cli/d1.txt").returncode == 4  # the admin scope releases
    holds = lines(run(user, "holds", "list", "--json").stdout)
    assert [(h["name"], h["legal_hold"], h["reason"]) for h in holds] == [
        ("cli/d1.txt", True, "audit 2027")
    ]

    removed = run(user, "rm", "cli/d0.txt")
    assert removed.returncode == 0, removed.stderr
    assert b"deleted: removed from s3, azure, gcs" in removed.stdout
    object_id = shown[0]["object_id"]
    trail = await state.audit(str(object_id))
    accepted = [r for r in trail if r["action"] == "object.accepted"]
    assert [r["detail"]["requested_by"] for r in accepted] == ["api:cli-user"]
    tail = run(user, "audit", "tail", "--from-beginning", "--idle", "3", "--json")
    assert tail.returncode == 0, tail.stderr
    records = lines(tail.stdout)
    assert any(r["object_id"] == object_id and r["actor"] == "api:cli-user" for r in records), (
        records[:5]
    )


async def test_refusals_through_the_api_exit_with_their_code(
    pipeline: Pipeline, api: str, user: tuple[Path, dict[str, str]]
) -> None:
    home, env = user
    reader = scoped(pipeline, "cli-reader", "--role", "reader")
    env |= {"MOVINGDATA_API_URL": api, "MOVINGDATA_TOKEN": reader}
    (home / "a.txt").write_text("a\n")

    missing = run(user, "restore", "cli/never.txt", "-o", "x")
    assert missing.returncode == 3, missing.stderr
    refused = run(user, "put", "a.txt")
    assert refused.returncode == 4 and b"write scope" in refused.stderr, refused.stderr
    unconfirmed = run(user, "forget", "cli/never.txt")
    assert unconfirmed.returncode == 2 and b"--yes" in unconfirmed.stderr
    tenant = run(user, "ls", "--tenant", "other")
    assert tenant.returncode == 2 and b"your token names the tenant" in tenant.stderr
    env["MOVINGDATA_TOKEN"] = "mdt_not-a-token"
    unknown = run(user, "ls")
    assert unknown.returncode == 4 and b"unknown or revoked token" in unknown.stderr
    env["MOVINGDATA_API_URL"] = "http://127.0.0.1:9"
    down = run(user, "ls")
    assert down.returncode == 5 and b"did not answer" in down.stderr
    for answer in (missing, refused, unconfirmed, tenant, unknown, down):
        assert b"Traceback" not in answer.stderr
        assert len(answer.stderr.decode().strip().splitlines()) <= 2, answer.stderr
