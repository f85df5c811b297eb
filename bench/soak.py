"""Soak: mixed puts, updates, unchanged re-puts, deletes, forgets and restores for a while,
with a worker killed by SIGKILL every few minutes and the broker restarted once, scheduled
scrubs running, replicas damaged behind MovingData's back (one at a time, repaired by the
scrub; once every replica of a version, lost until a good copy is back) and one audit chain
rewritten while the sink runs; then a full check of everything.

    .venv/bin/python -m bench.soak [--minutes 30] [--kill-every-s 180] [--seed 11]

Five worker processes (two of ``ingest,encrypt,retry``, two of
``replicate,verify,tier,delete``, one ``sink``); a killed one is replaced at once. The check:
every version in the state its operations call for (verified, deleted, shredded), every live
version restored bit for bit from a replica, one document per version, each verified
version's steps once in its trail, every chain and the checkpoint log intact but the one
tampered with, which the sink refused to sign and ``audit verify`` names. Needs the local
stack (`make stack`); prints one line of figures and writes ``bench/results/soak.json``.
"""

import argparse
import asyncio
import hashlib
import os
import random
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import isolated, remove_run, write_json
from bench.tamper import rewrite
from schemas.events import Placement, object_id_for
from workers.audit.checkpoints import all_signed
from workers.audit.verify import verify
from workers.client.identity import cli_actor
from workers.client.ops import request_removal, scrub, wait_removed
from workers.client.puts import files_to_put, put_files, wait_puts
from workers.client.restore import restore_best
from workers.client.state import State
from workers.demo import start_worker, stop_worker
from workers.deps import build_deps, prepare
from workers.errors import NotFound
from workers.kms.keys import open_signer
from workers.settings import Settings, load_settings
from workers.stack.control import start_service, stop_service
from workers.tiering.live import Tiering

ROLES = {"ingest,encrypt,retry": 2, "replicate,verify,tier,delete": 2, "sink": 1}
CHAIN_STEPS = ("object.accepted", "object.encrypted", "replica.written", "replica.verified")


@dataclass
class Model:
    """What the operations call for: per name, its contents by version and removed versions."""

    contents: dict[str, dict[int, bytes]] = field(default_factory=dict)
    removed: dict[tuple[str, int], str] = field(default_factory=dict)  # -> deleted | shredded
    ops: Counter[str] = field(default_factory=Counter)
    damaged: set[str] = field(default_factory=set)  # versions (doc ids) with a replica damaged
    tampered: str | None = None  # the object whose chain was rewritten


async def other_bytes(store: Any, key: str) -> tuple[bytes, bytes]:
    """The replica's bytes, and what replaces them: the same length, other bytes."""
    data = b"".join([c async for c in store.read(key)])
    return data, bytes(b ^ 0x5A for b in data)


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def damage(settings: Settings, doc: dict[str, Any], targets: Sequence[str]) -> bytes:
    """Overwrite the replicas of ``targets`` behind MovingData's back; return the good bytes
    (empty when a replica is gone already: a removal under way)."""
    deps = build_deps(settings)
    good = b""
    try:
        for target in targets:
            store = deps.store(target)
            key = ((doc.get("replicas") or {}).get(target) or {}).get("key") or doc["key"]
            good, bad = await other_bytes(store, key)
            await store.write(key, body(bad))
    except NotFound:
        return b""
    finally:
        await deps.close()
    return good


async def lose_and_recover(settings: Settings, state: State, doc: dict[str, Any]) -> dict[str, Any]:
    """Every replica of one version damaged: the scrub finds it lost; a good copy put back in
    one store, the scrub repairs the others and it is verified again."""
    good = await damage(settings, doc, settings.targets)
    if not good:
        return {"lost_and_recovered": "skipped: the version was being removed"}
    await scrub(settings, [doc], actor=cli_actor())
    lost = await wait_state(state, doc, "lost", timeout_s=300)
    deps = build_deps(settings)
    try:
        first = settings.targets[0]
        key = ((doc.get("replicas") or {}).get(first) or {}).get("key") or doc["key"]
        await deps.store(first).write(key, body(good))
    finally:
        await deps.close()
    await scrub(settings, [doc], actor=cli_actor())
    back = await wait_state(state, doc, "verified", timeout_s=300)
    return {"seen_lost": lost, "verified_again": back}


async def wait_state(state: State, doc: dict[str, Any], wanted: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await state.object(doc["object_id"], doc["version"])
        if found is not None and found.get("state") == wanted:
            return True
        await asyncio.sleep(1.0)
    return False


async def tamper(state: State, doc: dict[str, Any]) -> str:
    """One chain rewritten consistently while the sink runs: a middle record edited, every
    later one re-hashed, its head moved; return the object's id."""
    middle = len(await state.audit(doc["object_id"])) // 2
    await rewrite(state.db, doc["object_id"], middle)
    return str(doc["object_id"])


class Fleet:
    """The worker processes, each role kept at its count, as a supervisor would: a process
    that exits (killed here, or halting on its own, e.g. while the broker is down) is replaced."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings, self.logs = settings, logs
        self.procs: dict[str, list[Any]] = {role: [] for role in ROLES}
        self.started = self.killed = 0

    def fill(self) -> None:
        for role, count in ROLES.items():
            self.procs[role] = [p for p in self.procs[role] if p.poll() is None]
            while len(self.procs[role]) < count:
                self.started += 1
                log = self.logs / f"{role.replace(',', '+')}-{self.started}.log"
                self.procs[role].append(start_worker(self.settings, log, role))

    @property
    def exited(self) -> int:
        """Processes that stopped on their own (not killed, not still running)."""
        running = sum(len(procs) for procs in self.procs.values())
        return self.started - self.killed - running

    async def supervise(self) -> None:
        while True:
            self.fill()
            await asyncio.sleep(1.0)

    def kill_one(self, rng: random.Random) -> str:
        role = rng.choice(sorted(ROLES))
        victim = rng.choice(self.procs[role])
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        self.killed += 1
        self.fill()
        return role

    def stop(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                stop_worker(proc)


async def put_one(settings: Settings, folder: Path, name: str, data: bytes) -> Any:
    path = folder / name
    path.write_bytes(data)
    placement = Placement(name=name, targets=settings.targets, tenant="soak")  # type: ignore[arg-type]
    (sent,) = await put_files(
        settings,
        files_to_put([path]),
        lambda n: placement.model_copy(update={"name": n}),
        actor=cli_actor(),
    )
    return sent.request


async def operate(
    settings: Settings, folder: Path, rng: random.Random, model: Model, state: State
) -> Any:
    """One operation, chosen at random; returns a put request to wait for, if any."""
    names = sorted(model.contents)
    ops, weights = (
        ["put", "update", "unchanged", "rm", "forget", "restore", "damage"],
        [4, 3, 2, 1, 1, 2, 1],
    )
    op = rng.choices(ops, weights)[0]
    if op == "put" or not names:
        name = f"o{len(names):04d}.bin"
        data = rng.randbytes(rng.randint(0, 256 * 1024))
        model.contents[name] = {}
        model.ops["put"] += 1
        return name, data, await put_one(settings, folder, name, data)
    name = rng.choice(names)
    object_id = object_id_for("soak", name)
    docs = await state.objects(object_id)
    live = [d for d in docs if d.get("state") == "verified"]
    if op == "update":
        data = rng.randbytes(rng.randint(1, 256 * 1024))
        model.ops["update"] += 1
        return name, data, await put_one(settings, folder, name, data)
    if not live:
        return None
    newest = live[-1]
    if op == "unchanged":
        data = model.contents[name].get(newest["version"])
        if data is None:  # its put is not settled in the model yet
            return None
        model.ops["unchanged"] += 1
        return name, data, await put_one(settings, folder, name, data)
    if op == "damage":  # one replica, behind MovingData's back: the scheduled scrub repairs it
        if await damage(settings, newest, [rng.choice(settings.targets)]):
            model.damaged.add(newest["_id"])
            model.ops["damage"] += 1
        return None
    if op in ("rm", "forget"):
        mode = "delete" if op == "rm" else "forget"
        await request_removal(settings, [newest], mode, "soak", actor=cli_actor())
        model.removed[name, newest["version"]] = "deleted" if op == "rm" else "shredded"
        model.ops[op] += 1
        return None
    deps = build_deps(settings)
    try:
        out = folder / f"restored-{uuid.uuid4().hex}"
        await restore_best(newest, deps.stores, deps.data_keys, out, tiering=Tiering.load(settings))
        same = hashlib.sha256(out.read_bytes()).hexdigest() == newest["plaintext_sha256"]
        out.unlink()
        model.ops["restore" if same else "restore mismatched"] += 1
    except Exception as exc:  # a version removed meanwhile: reported, not fatal to the soak
        model.ops[f"restore refused: {type(exc).__name__}"] += 1
    finally:
        await deps.close()
    return None


async def check(settings: Settings, model: Model, state: State, folder: Path) -> dict[str, Any]:
    """Everything in the state the operations call for."""
    db = state.db
    docs = [d async for d in db["objects"].find({})]
    by_version = Counter((d["name"], d["version"]) for d in docs)
    duplicates = sum(n - 1 for n in by_version.values() if n > 1)
    lost = wrong_state = 0
    wrong: list[dict[str, Any]] = []  # what each version in a wrong state shows, to explain it
    deps = build_deps(settings)
    tiering = Tiering.load(settings)
    trails: dict[str, list[dict[str, Any]]] = {}
    async for record in db["audit"].find({}):
        trails.setdefault(record["object_id"], []).append(record)
    for records in trails.values():
        records.sort(key=lambda r: r["seq"])
    try:
        for doc in docs:
            key = (doc["name"], doc["version"])
            expected = model.removed.get(key, "verified")
            if doc.get("state") != expected:
                wrong_state += 1
                wrong.append(
                    {
                        "name": doc["name"],
                        "version": doc["version"],
                        "expected": expected,
                        "state": doc.get("state"),
                        "replicas": {
                            t: {k: str(r.get(k)) for k in ("verdict", "checked_at", "removed_at")}
                            for t, r in (doc.get("replicas") or {}).items()
                        },
                        "trail": [
                            f"{r['action']}:{r['outcome']}"
                            for r in trails.get(doc["object_id"], [])
                            if r["version"] == doc["version"]
                        ][-12:],
                    }
                )
                continue
            steps = Counter(
                r["action"]
                for r in trails.get(doc["object_id"], [])
                if r["version"] == doc["version"] and r["outcome"] == "ok"
            )
            if expected == "verified":
                if any(steps[s] != (1 if s.startswith("object") else 3) for s in CHAIN_STEPS):
                    duplicates += 1
                out = folder / "check.bin"
                try:
                    await restore_best(
                        doc, deps.stores, deps.data_keys, out, tiering=tiering, force=True
                    )
                    if out.read_bytes() != model.contents[doc["name"]].get(doc["version"]):
                        lost += 1
                except Exception:
                    lost += 1
    finally:
        await deps.close()
    signer = open_signer(settings, "reader")
    try:
        found = await verify(db, signer, ())
    finally:
        await signer.close()
    tamper_named = model.tampered in found.broken
    broken = len(found.broken) - tamper_named
    actions = Counter(r["action"] for t in trails.values() for r in t)
    put_versions = sum(len(v) for v in model.contents.values())
    return {
        "versions": len(docs),
        "versions_put": put_versions,
        "objects_lost": lost + max(0, put_versions - len(docs)),
        "wrong_state": wrong_state,
        "wrong_states": wrong[:10],
        "duplicates": duplicates,
        "chains_broken": broken,
        "tamper_named_by_verify": tamper_named,
        "replicas_damaged": len(model.damaged),
        "scrub_repairs": actions["scrub.repaired"],
        "scrub_verdicts_bad": sum(
            n
            for a, n in actions.items()
            if a.startswith("replica.") and a.split(".")[1] in ("damaged", "missing", "unreadable")
        ),
        "checkpointed": found.log != "no checkpoint yet",
    }


async def run(base: Settings, minutes: float, kill_every_s: float, seed: int) -> dict[str, Any]:
    name = f"soak{uuid.uuid4().hex[:8]}"
    (base.home / "bench").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=name, dir=base.home / "bench"))
    settings = isolated(
        base, name, work, kek_name=f"movingdata-{name}", broker_session_timeout_s=10.0,
        retry_cap_s=10.0, audit_checkpoint_s=5.0, scrub_interval_s=20.0, scrub_share=0.05,
    )  # fmt: skip
    await prepare(settings)
    fleet = Fleet(settings, work)
    fleet.fill()
    supervisor = asyncio.create_task(fleet.supervise())
    state = State(settings)
    rng, model = random.Random(seed), Model()
    pending: list[tuple[str, bytes, Any]] = []
    kills, restarts = [], 0
    began = time.monotonic()
    next_kill = began + kill_every_s
    broker_restart_at = began + minutes * 30  # halfway
    incidents_at = began + minutes * 20  # a third of the way: one version lost, one tamper
    incidents: dict[str, Any] = {}
    try:
        while time.monotonic() - began < minutes * 60:
            if (sent := await operate(settings, work, rng, model, state)) is not None:
                pending.append(sent)
            if time.monotonic() > next_kill:
                kills.append(fleet.kill_one(rng))
                next_kill += kill_every_s
            if restarts == 0 and time.monotonic() > broker_restart_at:
                await asyncio.to_thread(stop_service, base, "kafka")
                await asyncio.to_thread(start_service, base, "kafka")
                restarts += 1
            if len(pending) >= 20:  # settle puts now and then: the model learns versions
                await settle(state, pending, model)
            if not incidents and time.monotonic() > incidents_at:
                incidents = await incident(settings, state, model, pending)
        await settle(state, pending, model)
        await repaired(settings, state, model)
        docs = [d async for d in state.db["objects"].find({})]
        for mode, tombstone in (("delete", "deleted"), ("forget", "shredded")):
            mine = [d for d in docs if model.removed.get((d["name"], d["version"])) == tombstone]
            await wait_removed(state, mine, mode, timeout_s=600)
        refused = frozenset({model.tampered} if model.tampered else ())
        await wait_checkpointed(state, refused, timeout_s=300)
        figures = await check(settings, model, state, work)
    finally:
        supervisor.cancel()
        fleet.stop()
        await remove_run(settings, state)
    return {
        "minutes": minutes,
        "operations": dict(model.ops),
        "operations_total": sum(model.ops.values()),
        "kills": len(kills),
        "exits_on_their_own": fleet.exited,
        "broker_restarts": restarts,
        **incidents,
        **figures,
    }


async def wait_checkpointed(state: State, refused: frozenset[str], timeout_s: float) -> None:
    """Until every head as it stands is signed, but the tampered one's (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await all_signed(state.db, refused):
            return
        await asyncio.sleep(1.0)


async def incident(
    settings: Settings, state: State, model: Model, pending: list[tuple[str, bytes, Any]]
) -> dict[str, Any]:
    """A version lost and recovered, and one chain rewritten while the sink runs (caught when
    the sink records its refusal in that chain)."""
    await settle(state, pending, model)
    live = [
        d
        async for d in state.db["objects"].find({"state": "verified"})
        if (d["name"], d["version"]) not in model.removed and d["_id"] not in model.damaged
    ]
    if len(live) < 2:
        return {"incidents": "skipped: fewer than two verified versions"}
    lost, forged = live[0], live[-1]
    found = await lose_and_recover(settings, state, lost)
    model.tampered = await tamper(state, forged)
    deadline = time.monotonic() + 120
    caught = False
    while not caught and time.monotonic() < deadline:
        caught = "checkpoint.refused" in [r["action"] for r in await state.audit(model.tampered)]
        await asyncio.sleep(1.0)
    return {**found, "tamper_refused_by_sink": caught}


async def repaired(settings: Settings, state: State, model: Model) -> None:
    """Every damaged version scrubbed once more and verified (bounded): what the scheduled
    scrub has not reached yet."""
    docs = [
        d
        for d in (await state.versions(sorted(model.damaged))).values()
        if d.get("state") not in ("deleted", "shredded")
    ]
    await scrub(settings, docs, actor=cli_actor())
    for doc in docs:
        await wait_state(state, doc, "verified", timeout_s=120)


async def settle(state: State, pending: list[tuple[str, bytes, Any]], model: Model) -> None:
    """Wait for the puts sent so far; record which version each one got."""
    results = await wait_puts(state, [request for _, _, request in pending], timeout_s=1200)
    for (name, data, _), result in zip(pending, results, strict=True):
        if result.version is not None:
            model.contents[name].setdefault(result.version, data)
        else:
            model.ops[f"put {result.outcome}"] += 1
    pending.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kill-every-s", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    result = asyncio.run(
        run(load_settings(operator=True), args.minutes, args.kill_every_s, args.seed)
    )
    print(result)
    write_json("soak", result)


if __name__ == "__main__":
    main()
