"""Every metadata operation against an estate of N versions: what grows with the estate.

    .venv/bin/python -m bench.scale [--sizes 10000,100000,1000000] [--out bench/results/scale.json]
                                    [--repeats 5] [--keep]

For each size, a fresh database of its own (``movingdata_scale_<N>``, dropped at the end
unless ``--keep``) is seeded through the project's own write paths without moving a byte:
ingest's decision (``workers.agents.ingest.decide``: the catalog's ``names`` and
``requests``), the key registry's record of each version (``MongoKeyRegistry.insert``, with
what encrypt records as written; the wrapped key is a stand-in: no KEK call), and the sink's
batch application of each version's events (``workers.agents.sink.write_batch``: the
``objects`` documents and the trail, 11 audit records a version with three targets). The
events are the stages' own: ingest's ``ObjectAccepted``, encrypt's ``announce`` (encrypted
and one replicated per target), a good store-digest verification and the initial hot
placement per target, stamped as verify and tier stamp them. One version in a thousand
fails instead (encrypt's dead letter): ``ls --state failed`` has 0.1% to find. Each object
has one version. Then the sink's checkpoint rounds (``sign_next``, with its OpenBao key) sign
every head, 10,000 marked heads a round, as a sink catching up would.

The seeding rate is measured at the first size; a size that would take more than
``SEED_BUDGET_S`` to seed here is capped (the cap and the rate are printed and recorded).

Each operation then runs in a child process of its own (``--child``), so no operation's
caches or garbage reach another's figures: the median of ``--repeats`` runs (whole-estate
scans fewer), and the child's peak RSS while it ran them: the kernel's high-water mark
(``VmHWM``) reset through ``/proc/self/clear_refs`` once the child has imported and
connected, so it is the process's whole resident memory at its peak during the runs
(interpreter and libraries included, about 100 MiB), not only what the operation allocated.

Rows go to ``--out`` (rows of other sizes already there are kept), a table is printed, and
a log-log plot of seconds against size is written beside it (``scale.svg``).
"""

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench.report import RESULTS
from schemas.events import (
    DeadLetter,
    Event,
    IngestRequest,
    ObjectAccepted,
    Placement,
    RecordRef,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
    Source,
    object_id_for,
)
from workers.agents import sink
from workers.agents.encrypt import announce
from workers.agents.ingest import decide
from workers.audit import checkpoints
from workers.audit.trail import step_of
from workers.client.identity import cli_actor
from workers.client.ops import client_record
from workers.client.puts import put_request
from workers.client.state import State
from workers.core.versions import Content
from workers.deps import Deps, build_deps
from workers.dispatch import stamp
from workers.kms.keyregistry import DataKeyRecord
from workers.settings import Settings, load_settings

Doc = dict[str, Any]
Row = dict[str, Any]
MiB = 1 << 20
TENANT = "default"
SIZES = (10_000, 100_000, 1_000_000)
SEED_BUDGET_S = 30 * 60  # the most one size may take to seed here
CAP = 300_000  # the size a capped run stops at, at most
FAILED_EVERY = 1000  # one version in this many fails (encrypt's dead letter)
SINK_BATCH = 500  # events per sink batch (the sink's own: ``workers.app.sink_loop``)
CHANGED_HEADS = 100  # chains moved before each timed checkpoint
KINDS = ("object", "page", "batch", "scan")
T0 = datetime(2027, 1, 4, 9, tzinfo=UTC)  # the estate's first put


# --- the estate's events ---------------------------------------------------------------


def name_of(n: int) -> str:
    return f"scale/{n:08d}.bin"


def content_of(n: int) -> Content:
    """Version ``n``'s stand-in content: a size and a digest, never bytes."""
    return Content(4096 + n % 65_536, f"{n:064x}")


def request_of(settings: Settings, n: int) -> IngestRequest:
    """The put of object ``n`` as a client sends it (a staged upload)."""
    placement = Placement(name=name_of(n), targets=settings.targets, tenant=TENANT)  # type: ignore[arg-type]
    return put_request(
        placement,
        Source(staged=f"{settings.staging_prefix}{TENANT}/req-{n}"),
        content_of(n),
        request_id=f"req-{n}",
        actor=cli_actor(),
    )


def failing(n: int) -> bool:
    """Version ``n`` fails (encrypt's dead letter): one in ``FAILED_EVERY``."""
    return n % FAILED_EVERY == FAILED_EVERY // 2


def written_for(request: IngestRequest, version: int, n: int) -> dict[str, Any]:
    """What encrypt records with version ``n``'s key once written to every target, as
    ``workers.agents.encrypt`` builds it (stand-in digests: no bytes are moved)."""
    targets = request.placement.targets
    digest = f"md5:{n:032x}"
    return {
        "primary": targets[0],
        "key": f"{TENANT}/{request.object_id}/v{version}/w{n:x}",
        "key_id": "movingdata:v1",
        "algorithm": "aes256gcm-chunked",
        "plaintext_size": request.plaintext_size,
        "plaintext_sha256": request.plaintext_sha256,
        "ciphertext_size": (request.plaintext_size or 0) + 64,
        "ciphertext_sha256": f"{n + 1:064x}",
        "store_digest": digest,
        "replicas": {t: digest for t in targets},
        "key_checked_at": (T0 + timedelta(seconds=n)).isoformat(),
    }


def version_events(request: IngestRequest, version: int, n: int) -> list[Event]:
    """One version's events as the stages produce them: accepted (ingest), encrypted and
    one replicated per target (encrypt's ``announce``), then per target a good store-digest
    verification and the initial hot placement; a ``failing`` version gets encrypt's dead
    letter instead."""
    accepted = stamp(
        ObjectAccepted,
        request,
        request.event_id,
        version=version,
        source=request.source,
        placement=request.placement,
        plaintext_size=request.plaintext_size,
        plaintext_sha256=request.plaintext_sha256,
        requested_by=request.actor,
    )
    assert isinstance(accepted, ObjectAccepted)
    if failing(n):
        letter = stamp(
            DeadLetter,
            accepted,
            "deadletter",
            stage="encrypt",
            reason="source changed since put",
            topic="accepted",
            partition=0,
            offset=n,
            payload_b64="",
        )
        return [accepted, letter]
    written = written_for(request, version, n)
    events: list[Event] = [accepted, *(e.event for e in announce(accepted, written, now=True))]
    for replica in [e for e in events if isinstance(e, ReplicaWritten)]:
        verified = stamp(
            ReplicaVerified,
            replica,
            replica.target,
            placement=replica.placement,
            target=replica.target,
            key=replica.key,
            ciphertext_sha256=replica.ciphertext_sha256,
            ciphertext_size=replica.ciphertext_size,
            verified_at=T0 + timedelta(seconds=n),
            mode="store-digest",
        )
        assert isinstance(verified, ReplicaVerified)
        tiered = stamp(
            ReplicaTiered,
            verified,
            verified.target,
            target=verified.target,
            key=verified.key,
            tier="hot",
            reason="initial",
        )
        events += [verified, tiered]
    return events


def refs_of(events: Sequence[Event], offset: int) -> list[RecordRef | None]:
    """Where the sink read each event: its stage's topic, a partition by object, an offset."""
    refs: list[RecordRef | None] = []
    for n, event in enumerate(events):
        step = step_of(event)
        topic = step[1].topic.suffix if step is not None else "deadletter"
        partition = int(event.object_id[:4], 16) % 12
        refs.append(RecordRef(topic=topic, partition=partition, offset=offset + n))
    return refs


def batches(items: Sequence[list[Event]], limit: int) -> list[list[Event]]:
    """Versions' events in batches of at most ``limit`` events, a version never split (one
    larger than ``limit`` is a batch of its own)."""
    out: list[list[Event]] = []
    for events in items:
        if out and len(out[-1]) + len(events) <= limit:
            out[-1].extend(events)
        else:
            out.append(list(events))
    return out


async def seed_versions(
    deps: Deps, db: Any, settings: Settings, first: int, count: int, heads: sink.HeadCache
) -> None:
    """Versions ``first`` .. ``first + count - 1``: decisions, key records, sink batches."""
    requests = [request_of(settings, n) for n in range(first, first + count)]
    decisions = await asyncio.gather(*(decide(r, deps) for r in requests))
    per_version = [
        version_events(r, d.version, n)
        for n, (r, d) in enumerate(zip(requests, decisions, strict=True), first)
    ]
    records = [
        DataKeyRecord(
            r.object_id,
            d.version,
            "movingdata:v1",
            b"stand-in, no KEK call: " + r.event_id.encode(),
            T0 + timedelta(seconds=n),
            written=written_for(r, d.version, n),
        )
        for n, (r, d) in enumerate(zip(requests, decisions, strict=True), first)
        if not failing(n)
    ]
    await asyncio.gather(*(deps.registry.insert(r) for r in records))
    for batch in batches(per_version, SINK_BATCH):
        await sink.write_batch(db, batch, heads, refs_of(batch, first * 16))


# --- measuring --------------------------------------------------------------------------


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """This process's peak RSS (``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no runs")
    return statistics.median(values)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation measured: its row name, kind and how many runs a median takes."""

    name: str
    kind: str
    runs: int
    per: int = 0  # seconds reported per this many versions (0: as measured)


OPS = (
    Op(f"checkpoint after {CHANGED_HEADS} changed heads", "batch", 3),
    Op("ingest decision, new put", "object", 5),
    Op("ingest decision, unchanged put", "object", 5),
    Op("sink batch (500 events)", "batch", 5),
    Op("audit verify, one object", "object", 5),
    Op("audit verify, everything", "scan", 1),
    Op("ls, first page", "page", 5),
    Op("ls --state failed, first page", "page", 3),
    Op("show", "object", 5),
    Op("API list, first page", "page", 5),
    Op("API list ?state=failed, first page", "page", 3),
    Op("API object", "object", 5),
    Op("scheduled scrub's selection", "scan", 1),
    Op("reconcile's selection", "scan", 1),
    Op("tier sweep, per 10,000 versions", "scan", 1, per=10_000),
)
SEED = Op("seed, per 10,000 versions", "scan", 1, per=10_000)
FIRST_CHECKPOINT = Op("checkpoints until every head is signed", "scan", 1)


def row(size: int, op: Op, seconds: Sequence[float], peak: float, **extra: Any) -> Row:
    """A result row: the median of the runs (per ``op.per`` versions when set)."""
    value = median(seconds)
    if op.per:
        value = value * op.per / size
    return {
        "size": size,
        "op": op.name,
        "kind": op.kind,
        "seconds": round(value, 4),
        "peak_rss_mib": round(peak, 1),
        "runs": len(seconds),
        **extra,
    }


def merged_rows(old: Iterable[Row], new: Sequence[Row]) -> list[Row]:
    """``new`` with the rows of ``old`` for the sizes ``new`` does not measure, by size."""
    sizes = {r["size"] for r in new}
    kept = [r for r in old if r.get("size") not in sizes]
    return sorted([*kept, *new], key=lambda r: r["size"])


def table(rows: Sequence[Row]) -> str:
    """Operations down, sizes across: seconds (peak RSS MiB)."""
    sizes = sorted({r["size"] for r in rows})
    ops = list(dict.fromkeys(r["op"] for r in rows))
    cell = {(r["op"], r["size"]): r for r in rows}
    header = ["operation", "kind", *(f"{s:,}" for s in sizes)]
    lines = [header]
    for op in ops:
        kind = next(r["kind"] for r in rows if r["op"] == op)
        found = [cell.get((op, s)) for s in sizes]
        lines.append(
            [op, kind]
            + [f"{r['seconds']:.4g} s ({r['peak_rss_mib']:.0f} MiB)" if r else "-" for r in found]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def growth(rows: Sequence[Row]) -> dict[str, float]:
    """Per operation: its seconds at the largest size over those at the smallest."""
    out = {}
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = sorted((r for r in rows if r["op"] == op), key=lambda r: r["size"])
        if len(mine) > 1 and mine[0]["seconds"] > 0:
            out[op] = round(mine[-1]["seconds"] / mine[0]["seconds"], 2)
    return out


def capped(sizes: Sequence[int], per_version_s: float) -> tuple[list[int], str | None]:
    """The sizes that seed within ``SEED_BUDGET_S`` at this rate; a larger one is replaced by
    the largest multiple of 10,000 that fits (at most ``CAP``), and why is said."""
    fits = int(SEED_BUDGET_S / per_version_s) if per_version_s > 0 else max(sizes)
    out, why = [], None
    for size in sizes:
        if size * per_version_s <= SEED_BUDGET_S:
            out.append(size)
            continue
        cap = min(CAP, fits // 10_000 * 10_000)
        why = (
            f"{size:,} versions would take {size * per_version_s / 60:.0f} min to seed at "
            f"{1 / per_version_s:.0f} versions/s (over {SEED_BUDGET_S // 60} min): "
            f"capped at {cap:,}"
        )
        if cap > 0 and cap not in out:
            out.append(cap)
    return sorted(set(out)), why


def plot(rows: Sequence[Row], out: Path) -> None:
    """Seconds against size, log-log, one line per operation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    styles = {"object": "o-", "page": "s-", "batch": "^-", "scan": "D--"}
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = sorted((r for r in rows if r["op"] == op), key=lambda r: r["size"])
        ax.plot(
            [r["size"] for r in mine],
            [max(r["seconds"], 1e-4) for r in mine],
            styles.get(mine[0]["kind"], "o-"),
            label=f"{op} ({mine[0]['kind']})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("versions in the estate")
    ax.set_ylabel("seconds (median)")
    ax.set_title("MovingData metadata operations against the estate's size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)


# --- the operations, each run in a child process -----------------------------------------


@dataclass
class Child:
    """What a child process measures with: the estate's settings, database and size."""

    settings: Settings
    size: int
    client: AsyncMongoClient[Doc]

    @property
    def db(self) -> Any:
        return self.client[self.settings.mongo_database]


async def timed(runs: int, once: Callable[[int], Awaitable[Any]]) -> list[float]:
    """``once(run)`` ``runs`` times, each timed alone."""
    seconds = []
    for run in range(runs):
        began = time.perf_counter()
        await once(run)
        seconds.append(time.perf_counter() - began)
    return seconds


def sample(size: int, count: int, seed: int) -> list[int]:
    """Distinct object numbers of the estate, spread over it (reproducibly)."""
    return random.Random(seed).sample(range(size), count)


async def op_ingest(child: Child, op: Op, unchanged: bool) -> list[float]:
    deps = build_deps(child.settings)
    try:
        picks = sample(child.size, op.runs, 1)

        async def once(run: int) -> None:
            n = picks[run]
            if unchanged:  # a second put of object n, same content, no bytes: a new request
                request = request_of(child.settings, n).model_copy(
                    update={"correlation_id": f"again-{n}", "source": None}
                )
            else:  # a name never put
                request = request_of(child.settings, child.size + 1_000_000 + run)
            decision = await decide(request, deps)
            assert decision.unchanged == unchanged, decision

        return await timed(op.runs, once)
    finally:
        await deps.close()


async def op_sink_batch(child: Child, op: Op) -> list[float]:
    deps = build_deps(child.settings)
    try:
        seconds = []
        per = SINK_BATCH // 11 + 1
        for run in range(op.runs):
            first = child.size + 2_000_000 + run * per
            requests = [request_of(child.settings, n) for n in range(first, first + per)]
            decisions = await asyncio.gather(*(decide(r, deps) for r in requests))
            events = [
                e
                for n, (r, d) in enumerate(zip(requests, decisions, strict=True), first)
                for e in version_events(r, d.version, n)
            ][:SINK_BATCH]
            began = time.perf_counter()
            await sink.write_batch(child.db, events, sink.HeadCache(), refs_of(events, first))
            seconds.append(time.perf_counter() - began)
        return seconds
    finally:
        await deps.close()


async def signed_all(
    db: Any, signer: Any, settings: Settings, now: datetime
) -> checkpoints.Signed | None:
    """Sign until no head is marked (what the seeding or other children moved), as the
    sink's timer would; the last checkpoint signed."""
    last = None
    while await db_marked(db):
        done = await checkpoints.sign_next(db, signer, now, last, settings.audit_sweep_segments)
        assert done.problem is None and not done.refused, (done.problem, done.refused)
        if done.signed is not None:
            last = checkpoints.Signed(done.signed["_id"], done.signed["digest"])
    return last


async def db_marked(db: Any) -> bool:
    """Whether some head is marked for the next checkpoint round."""
    return await db["audit_heads"].find_one({"dirty": {"$exists": True}}, {"_id": 1}) is not None


async def op_checkpoint(child: Child, op: Op) -> list[float]:
    from workers.kms.keys import open_signer

    signer = open_signer(child.settings, "sink")
    try:
        now = datetime.now(UTC)
        last = await signed_all(child.db, signer, child.settings, now)
        seconds = []
        for run in range(op.runs):
            picks = sample(child.size, CHANGED_HEADS, 100 + run)
            docs = [{"object_id": object_id_for(TENANT, name_of(n)), "version": 1} for n in picks]
            moved = [client_record(d, "scrub", {}, f"scale-{run}", actor=cli_actor()) for d in docs]
            await sink.append_audit(child.db, moved)
            began = time.perf_counter()
            done = await checkpoints.sign_next(
                child.db,
                signer,
                now + timedelta(seconds=run + 1),
                last,
                child.settings.audit_sweep_segments,
            )
            seconds.append(time.perf_counter() - began)
            assert done.signed is not None and done.signed["moved"] == CHANGED_HEADS, done
            last = checkpoints.Signed(done.signed["_id"], done.signed["digest"])
        return seconds
    finally:
        await signer.close()


async def op_verify(child: Child, op: Op, one: bool) -> list[float]:
    from workers.audit.verify import verify
    from workers.kms.keys import open_signer

    signer = open_signer(child.settings, "reader")
    try:
        log = [d async for d in child.db[checkpoints.LOG].find({}).sort("_id", 1)]
        published = [checkpoints.published(d, "sink").detail for d in log]
        picks = sample(child.size, op.runs, 2)

        async def once(run: int) -> None:
            only = object_id_for(TENANT, name_of(picks[run])) if one else None
            found = await verify(child.db, signer, published, only)
            assert not found.broken and found.chains >= (1 if one else child.size), found

        return await timed(op.runs, once)
    finally:
        await signer.close()


async def op_ls(child: Child, op: Op, state_filter: str | None) -> list[float]:
    state = State(child.settings)
    try:

        async def once(run: int) -> None:
            page = await state.listing(tenant=TENANT, state=state_filter, limit=100)
            assert page.rows, "an empty page"

        return await timed(op.runs, once)
    finally:
        await state.close()


async def op_show(child: Child, op: Op) -> list[float]:
    state = State(child.settings)
    picks = sample(child.size, op.runs, 3)
    try:

        async def once(run: int) -> None:
            _, docs = await state.resolve(name_of(picks[run]), TENANT)
            assert docs

        return await timed(op.runs, once)
    finally:
        await state.close()


def op_api(child: Child, op: Op, path: str) -> list[float]:
    """Through the API's app (routes, auth, models) in process, on the real database."""
    from fastapi.testclient import TestClient

    from workers.api import tokens
    from workers.api.app import create_app

    async def token() -> str:
        state = State(child.settings)
        try:
            return await tokens.create(state.db, f"scale-{time.time_ns()}", TENANT, {"read"}, None)
        finally:
            await state.close()

    headers = {"Authorization": f"Bearer {asyncio.run(token())}"}
    picks = sample(child.size, op.runs, 4)
    with TestClient(create_app(child.settings)) as http:
        http.get("/v1/objects?limit=1", headers=headers).raise_for_status()  # warm: opened
        reset_peak()
        seconds = []
        for run in range(op.runs):
            url = path.format(object_id=object_id_for(TENANT, name_of(picks[run])))
            began = time.perf_counter()
            answer = http.get(url, headers=headers)
            seconds.append(time.perf_counter() - began)
            answer.raise_for_status()
        return seconds


async def op_scrub(child: Child, op: Op) -> list[float]:
    """The scheduled scrub's selection and coverage (``workers.jobs.scrub.select``, what a
    round does before it sends anything)."""
    from workers.jobs.scrub import select

    state = State(child.settings)
    try:

        async def once(run: int) -> None:
            chosen, _ = await select(child.settings, state, datetime.now(UTC))
            assert chosen

        return await timed(op.runs, once)
    finally:
        await state.close()


async def op_reconcile(child: Child, op: Op) -> list[float]:
    from workers.jobs.reconcile import reconcile

    state = State(child.settings)
    try:

        async def once(run: int) -> None:
            sent = await reconcile(child.settings, state, datetime.now(UTC))
            assert sent == 0, sent  # nothing stalled: the selection alone

        return await timed(op.runs, once)
    finally:
        await state.close()


async def op_tier_sweep(child: Child, op: Op) -> list[float]:
    from workers.tiering.live import Tiering, sweep

    tiering = Tiering.load(child.settings)

    async def once(run: int) -> None:
        done = await sweep(child.settings, tiering, datetime.now(UTC), "scale", dry_run=True)
        assert done.versions >= child.size * 0.99, done.versions

    return await timed(op.runs, once)


async def measure(child: Child, op: Op) -> list[float]:
    """Run ``op``'s runs (its peak RSS counted from here)."""
    match op.name:
        case "ingest decision, new put":
            return await op_ingest(child, op, unchanged=False)
        case "ingest decision, unchanged put":
            return await op_ingest(child, op, unchanged=True)
        case "sink batch (500 events)":
            return await op_sink_batch(child, op)
        case name if name.startswith("checkpoint after"):
            return await op_checkpoint(child, op)
        case "audit verify, one object":
            return await op_verify(child, op, one=True)
        case "audit verify, everything":
            return await op_verify(child, op, one=False)
        case "ls, first page":
            return await op_ls(child, op, None)
        case "ls --state failed, first page":
            return await op_ls(child, op, "failed")
        case "show":
            return await op_show(child, op)
        case "scheduled scrub's selection":
            return await op_scrub(child, op)
        case "reconcile's selection":
            return await op_reconcile(child, op)
        case "tier sweep, per 10,000 versions":
            return await op_tier_sweep(child, op)
    raise ValueError(f"no operation {op.name!r}")


API_PATHS = {
    "API list, first page": "/v1/objects?limit=100",
    "API list ?state=failed, first page": "/v1/objects?limit=100&state=failed",
    "API object": "/v1/objects/{object_id}",
}


async def seed(child: Child, chunk: int = 200) -> dict[str, Any]:
    """Seed ``child.size`` versions; then sign the first checkpoint. Returns both timings."""
    db = child.db
    await sink.create_indexes(db)
    await checkpoints.create_indexes(db)
    deps = build_deps(child.settings)
    heads = sink.HeadCache()  # the sink's own, bounded
    began = time.perf_counter()
    try:
        for first in range(0, child.size, chunk):
            await seed_versions(
                deps, db, child.settings, first, min(chunk, child.size - first), heads
            )
            if first and first % 50_000 == 0:
                rate = first / (time.perf_counter() - began)
                print(f"  seeded {first:,} ({rate:.0f} versions/s)", file=sys.stderr, flush=True)
    finally:
        await deps.close()
    seeded = time.perf_counter() - began
    seed_peak = peak_rss_mib()
    del heads
    reset_peak()
    began = time.perf_counter()
    signed = await first_checkpoint(db, child.settings)
    return {
        "seed_s": seeded,
        "seed_peak": seed_peak,
        "checkpoint_s": time.perf_counter() - began,
        "checkpoint_peak": peak_rss_mib(),
        "heads": signed["size"],
    }


async def first_checkpoint(db: Any, settings: Settings) -> Doc:
    """Every head signed by the sink's own rounds (``sign_next``); the last checkpoint."""
    from workers.kms.keys import open_signer

    signer = open_signer(settings, "sink")
    try:
        await signed_all(db, signer, settings, datetime.now(UTC))
    finally:
        await signer.close()
    top = await checkpoints.latest(db)
    assert top is not None
    return top


def child_main(op_name: str, size: int, database: str) -> None:
    settings = load_settings(operator=True).model_copy(update={"mongo_database": database})
    if op_name in API_PATHS:
        op = next(o for o in OPS if o.name == op_name)
        child = Child(settings, size, AsyncMongoClient(settings.mongo_url))
        seconds = op_api(child, op, API_PATHS[op_name])
        print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib()}))
        return

    async def go() -> dict[str, Any]:
        child = Child(settings, size, AsyncMongoClient(settings.mongo_url))
        try:
            if op_name == "seed":
                return await seed(child)
            op = next(o for o in OPS if o.name == op_name)
            await child.db["objects"].find_one({})  # connected before the peak is reset
            reset_peak()
            seconds = await measure(child, op)
            return {"seconds": seconds, "peak_rss_mib": peak_rss_mib()}
        finally:
            await child.client.close()

    print(json.dumps(asyncio.run(go())))


# --- the parent: sizes, children, results -------------------------------------------------


def run_child(op: str, size: int, database: str) -> dict[str, Any]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--child", op, "--size", str(size), "--db", database],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    print(f"  {op}: {time.monotonic() - began:.1f} s wall", file=sys.stderr, flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def drop(settings: Settings, database: str) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def measure_size(settings: Settings, size: int, keep: bool, note: str | None) -> list[Row]:
    database = f"movingdata_scale_{size}"
    asyncio.run(drop(settings, database))  # fresh, whatever an interrupted run left
    print(f"{size:,} versions: seeding {database}", file=sys.stderr, flush=True)
    rows: list[Row] = []
    try:
        seeded = run_child("seed", size, database)
        extra = {"versions_per_s": round(size / seeded["seed_s"], 1)}
        rows.append(row(size, SEED, [seeded["seed_s"]], seeded["seed_peak"], **extra))
        if note:
            rows[-1]["note"] = note
        rows.append(
            row(size, FIRST_CHECKPOINT, [seeded["checkpoint_s"]], seeded["checkpoint_peak"])
        )
        for op in OPS:
            found = run_child(op.name, size, database)
            rows.append(row(size, op, found["seconds"], found["peak_rss_mib"]))
    finally:
        if not keep:
            asyncio.run(drop(settings, database))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--keep", action="store_true", help="Keep each size's database.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.size, args.db)
        return
    settings = load_settings(operator=True)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rows: list[Row] = []
    note = None
    first = measure_size(settings, sizes[0], args.keep, None)
    rows += first
    per_version = 1 / first[0]["versions_per_s"]
    rest, note = capped(sizes[1:], per_version)
    if note:
        print(note, file=sys.stderr, flush=True)
    for size in rest:
        rows += measure_size(settings, size, args.keep, note if size == max(rest) else None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(args.out.read_text()) if args.out.exists() else []
    everything = merged_rows(old, rows)
    args.out.write_text(json.dumps(everything, indent=2) + "\n")
    plot(everything, args.out.with_suffix(".svg"))
    print(table(everything))
    grown = growth(everything)
    print("\nlargest size over smallest, seconds:")
    for op, factor in sorted(grown.items(), key=lambda kv: -kv[1]):
        print(f"  {factor:>8.1f}x  {op}")
    print(f"\n{args.out} and {args.out.with_suffix('.svg')}")
    if note:
        print(note)


if __name__ == "__main__":
    main()
