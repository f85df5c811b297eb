"""The four benchmark workloads, generated deterministically (same names, sizes and bytes on
every machine) and cached under ``<home>/bench/workloads/<name>``.

Bytes come from AES-256-CTR under a key derived from the workload's name: incompressible like
real ciphertext-bound data, and generated at several GB/s so a 2 GiB file costs seconds.
"""

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KiB, MiB, GiB = 1024, 1024**2, 1024**3
BLOCK = 8 * MiB


@dataclass(frozen=True)
class Workload:
    name: str
    count: int
    min_size: int
    max_size: int

    def sizes(self) -> list[int]:
        rng = random.Random(self.name)
        return [rng.randint(self.min_size, self.max_size) for _ in range(self.count)]

    @property
    def label(self) -> str:
        low, high = human(self.min_size), human(self.max_size)
        return f"{self.count} x {low if low == high else f'{low}-{high}'}"


WORKLOADS = {
    w.name: w
    for w in (
        Workload("a", 2000, 4 * KiB, 64 * KiB),
        Workload("b", 200, MiB, MiB),
        Workload("c", 4, 256 * MiB, 256 * MiB),
        Workload("d", 1, 2 * GiB, 2 * GiB),
    )
}


def human(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def write_file(path: Path, size: int, seed: str) -> None:
    key = hashlib.sha256(seed.encode()).digest()
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(BLOCK)
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, BLOCK)
            out.write(stream.update(zeros[:n]))
            left -= n


def materialise(workload: Workload, root: Path) -> Path:
    """The workload's folder, written once; files whose size is right are kept."""
    folder = root / workload.name
    folder.mkdir(parents=True, exist_ok=True)
    for n, size in enumerate(workload.sizes()):
        path = folder / f"{workload.name}-{n:04d}.bin"
        if not path.exists() or path.stat().st_size != size:
            write_file(path, size, f"{workload.name}/{n}")
    return folder
