"""The key registry is the only copy of the wrapped data keys: losing it loses the data. A
backup taken with `keys backup` and put back with `keys restore` makes every replica readable
again; nothing in the backup is a usable key without the KMS."""

import base64
import os
import stat
from pathlib import Path

import orjson

from tests.pipeline import Pipeline
from workers.client.state import State


async def test_a_lost_registry_restored_from_its_backup_reads_again(
    pipeline: Pipeline, worker_all: object, state: State, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    (tmp_path / "precious.bin").write_bytes(data)
    put = pipeline.cli("put", str(tmp_path / "precious.bin"), "--wait")
    assert put.returncode == 0, put.stderr
    backup = tmp_path / "registry.jsonl"
    made = pipeline.cli("keys", "backup", str(backup))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    (record,) = [orjson.loads(line) for line in backup.read_text().splitlines()]
    # Wrapped by the KMS (OpenBao transit), never a bare key.
    assert base64.b64decode(record["wrapped"]).startswith(b"vault:v")
    again = pipeline.cli("keys", "backup", str(backup))
    assert again.returncode == 1 and "exists" in again.stderr

    await state.db["data_keys"].drop()  # the registry is lost
    lost = pipeline.cli("restore", "precious.bin", "-o", str(tmp_path / "lost.bin"))
    assert lost.returncode != 0 and "no data key" in lost.stderr
    assert not (tmp_path / "lost.bin").exists()

    restored = pipeline.cli("keys", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "1 key records restored, 0 already present" in restored.stdout
    out = tmp_path / "back.bin"
    read = pipeline.cli("restore", "precious.bin", "-o", str(out))
    assert read.returncode == 0, read.stderr
    assert out.read_bytes() == data
    twice = pipeline.cli("keys", "restore", str(backup))
    assert "0 key records restored, 1 already present" in twice.stdout

    (tmp_path / "junk.jsonl").write_text('{"_id": "dek:x:v1"}\n')
    junk = pipeline.cli("keys", "restore", str(tmp_path / "junk.jsonl"))
    assert junk.returncode == 1 and "junk.jsonl:1: not a key registry record" in junk.stderr
    assert "Traceback" not in junk.stderr
