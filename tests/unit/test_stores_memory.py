"""What only the in-memory store has: its fault hook and buckets shared by name."""

from collections.abc import AsyncIterator

from workers.stores.memory import MemoryStore


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_corrupt_reads_flip_every_byte_of_the_listed_keys(unique: str) -> None:
    store = MemoryStore(unique, part_size=4)
    await store.ensure_container()
    await store.write("bad", one_chunk(b"\x00\x0f\xff0123456"))
    await store.write("good", one_chunk(b"fine"))
    store.corrupt_reads.add("bad")

    assert b"".join([c async for c in store.read("bad", 1, 4)]) == b"\xf0\x00\xcf"
    assert b"".join([c async for c in store.read("good")]) == b"fine"
    assert (await store.stat("bad")).size == 10  # only reads lie


async def test_stores_with_one_name_share_objects_but_not_faults(unique: str) -> None:
    writer, reader = MemoryStore(unique), MemoryStore(unique)
    await writer.ensure_container()
    writer.corrupt_reads.add("k")

    await writer.write("k", one_chunk(b"shared"))

    assert b"".join([c async for c in reader.read("k")]) == b"shared"
    other = MemoryStore(f"{unique}-other")
    await other.ensure_container()
    assert [info.key async for info in other.list()] == []
