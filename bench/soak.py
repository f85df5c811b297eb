"""Soak: mixed puts, updates, unchanged re-puts, deletes, forgets and restores for a while,
with a worker killed by SIGKILL every few minutes and the broker restarted once, then a full
check of everything.

    .venv/bin/python -m bench.soak [--minutes 30] [--kill-every-s 180] [--seed 11]

Five worker processes (two of ``ingest,encrypt,retry``, two of
``replicate,verify,tier,delete``, one ``sink``); a killed one is replaced at once. The check:
every version in the state its operations call for (verified, deleted, shredded), every live
version restored bit for bit from a replica, one document per version, each verified
version's steps once in its trail, every chain and the checkpoint intact. Needs the local
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import isolated, remove_run, write_json
from schemas.events import Placement, object_id_for
from workers.audit.checkpoints import all_signed
from workers.audit.verify import verify
from workers.client.identity import cli_actor
from workers.client.ops import request_removal, wait_removed
from workers.client.puts import files_to_put, put_files, wait_puts
from workers.client.restore import restore_best
from workers.client.state import State
from workers.demo import start_worker, stop_worker
from workers.deps import build_deps, prepare
from workers.keys import open_signer
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
    op = rng.choices(["put", "update", "unchanged", "rm", "forget", "restore"], [4, 3, 2, 1, 1, 2])[
        0
    ]
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
        broken = len(found.broken)
    finally:
        await signer.close()
    put_versions = sum(len(v) for v in model.contents.values())
    return {
        "versions": len(docs),
        "versions_put": put_versions,
        "objects_lost": lost + max(0, put_versions - len(docs)),
        "wrong_state": wrong_state,
        "duplicates": duplicates,
        "chains_broken": broken,
        "checkpointed": found.log != "no checkpoint yet",
    }


async def run(base: Settings, minutes: float, kill_every_s: float, seed: int) -> dict[str, Any]:
    name = f"soak{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=name, dir=base.home / "bench"))
    settings = isolated(
        base, name, work, kek_name=f"movingdata-{name}", broker_session_timeout_s=10.0,
        retry_cap_s=10.0, audit_checkpoint_s=5.0,
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
        await settle(state, pending, model)
        docs = [d async for d in state.db["objects"].find({})]
        for mode, tombstone in (("delete", "deleted"), ("forget", "shredded")):
            mine = [d for d in docs if model.removed.get((d["name"], d["version"])) == tombstone]
            await wait_removed(state, mine, mode, timeout_s=600)
        await wait_checkpointed(state, timeout_s=300)
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
        **figures,
    }


async def wait_checkpointed(state: State, timeout_s: float) -> None:
    """Until every head as it stands is signed (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await all_signed(state.db):
            return
        await asyncio.sleep(1.0)


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
