"""Tests of the local development keyring."""

import json
import stat
from pathlib import Path

import pytest

from workers.errors import Fatal, IntegrityError, NotFound, Permanent
from workers.kms.keyring import LocalKeyring

DEK = bytes(range(32))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keyring.json"


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.asyncio
async def test_first_use_creates_a_private_file(path: Path) -> None:
    keyring = LocalKeyring(path)
    key_id, wrapped = await keyring.wrap(DEK)
    assert key_id == "local:movingdata:v1"
    assert file_mode(path) == 0o600
    assert DEK not in wrapped
    assert await keyring.unwrap(key_id, wrapped) == DEK
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


@pytest.mark.asyncio
async def test_wraps_are_fresh_each_time(path: Path) -> None:
    keyring = LocalKeyring(path)
    (_, first), (_, second) = await keyring.wrap(DEK), await keyring.wrap(DEK)
    assert first != second


@pytest.mark.asyncio
async def test_rotate_keeps_old_versions_readable(path: Path) -> None:
    keyring = LocalKeyring(path, name="tenant-a")
    old_id, old_wrapped = await keyring.wrap(DEK)
    assert await keyring.rotate() == "local:tenant-a:v2"
    new_id, new_wrapped = await keyring.wrap(DEK)
    assert (old_id, new_id) == ("local:tenant-a:v1", "local:tenant-a:v2")
    assert await keyring.unwrap(old_id, old_wrapped) == DEK
    assert await keyring.unwrap(new_id, new_wrapped) == DEK
    assert file_mode(path) == 0o600


@pytest.mark.asyncio
async def test_other_instances_see_a_rotation(path: Path) -> None:
    await LocalKeyring(path).rotate()
    key_id, wrapped = await LocalKeyring(path).wrap(DEK)
    assert key_id == "local:movingdata:v2"
    assert await LocalKeyring(path).unwrap(key_id, wrapped) == DEK


@pytest.mark.asyncio
async def test_rewrap_moves_a_key_to_the_current_version(path: Path) -> None:
    keyring = LocalKeyring(path)
    old = await keyring.wrap(DEK)
    await keyring.rotate()
    new_id, new_wrapped = await keyring.rewrap(*old)
    assert new_id == "local:movingdata:v2"
    assert await keyring.unwrap(new_id, new_wrapped) == DEK


@pytest.mark.asyncio
async def test_disabled_version_no_longer_unwraps(path: Path) -> None:
    keyring = LocalKeyring(path)
    old = await keyring.wrap(DEK)
    await keyring.rotate()
    moved = await keyring.rewrap(*old)
    await keyring.disable(1)
    with pytest.raises(Permanent, match="local:movingdata:v1 is disabled"):
        await keyring.unwrap(*old)
    assert await keyring.unwrap(*moved) == DEK  # rewrapped before disabling: still readable


@pytest.mark.asyncio
async def test_current_or_unknown_version_cannot_be_disabled(path: Path) -> None:
    keyring = LocalKeyring(path)
    with pytest.raises(Permanent, match="rotate before disabling"):
        await keyring.disable(1)
    with pytest.raises(NotFound):
        await keyring.disable(7)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "key_id",
    ["local:movingdata:v2", "local:other:v1", "openbao:movingdata:v1", "local:movingdata:v01"],
)
async def test_foreign_key_ids_are_not_found(path: Path, key_id: str) -> None:
    keyring = LocalKeyring(path)
    _, wrapped = await keyring.wrap(DEK)
    with pytest.raises(NotFound):
        await keyring.unwrap(key_id, wrapped)


@pytest.mark.asyncio
async def test_tampered_or_misattributed_wraps_fail(path: Path) -> None:
    keyring = LocalKeyring(path)
    key_id, wrapped = await keyring.wrap(DEK)
    for bad in (wrapped[:-1] + bytes([wrapped[-1] ^ 1]), wrapped[:20], b""):
        with pytest.raises(IntegrityError):
            await keyring.unwrap(key_id, bad)
    await keyring.rotate()
    with pytest.raises(IntegrityError):  # the key id is authenticated: v1's wrap isn't v2's
        await keyring.unwrap("local:movingdata:v2", wrapped)


@pytest.mark.asyncio
async def test_refuses_a_readable_by_others_file(path: Path) -> None:
    await LocalKeyring(path).wrap(DEK)
    path.chmod(0o644)
    with pytest.raises(Fatal, match="mode 600"):
        await LocalKeyring(path).wrap(DEK)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b'{"current": 2, "keks": {"1": "AAAA"}, "disabled": []}'],
)
async def test_refuses_a_corrupt_file(path: Path, content: bytes) -> None:
    path.parent.mkdir()
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(Fatal, match="corrupt"):
        await LocalKeyring(path).wrap(DEK)


@pytest.mark.asyncio
async def test_repr_and_file_show_no_key_material(path: Path) -> None:
    keyring = LocalKeyring(path)
    await keyring.wrap(DEK)
    assert repr(keyring) == f"LocalKeyring(path={str(path)!r}, name='movingdata')"
    kek = json.loads(path.read_text())["keks"]["1"]
    assert kek not in repr(keyring)


def test_rejects_names_that_would_break_key_ids(path: Path) -> None:
    with pytest.raises(ValueError, match="keyring name"):
        LocalKeyring(path, name="a:b")
