"""Synthetic access logs (``movingdata tier synth``), deterministic per seed.

Each object is uploaded on a random day of the first three quarters of the period, with a size
from a mix (45% tiny: 200 B-100 KiB, 40% 128 KiB-20 MiB, 15% 20 MiB-2 GiB, log-uniform in each).
Its popularity follows Zipf's law (exponent 1.1, over a random order of the objects); its reads
fall off with age (exponential, a time constant of 3-40 days drawn per object) over a small
background; now and then an object older than 60 days gets a burst of re-reads over 1-3 days.
Reads follow a daily cycle (most between 08:00 and 18:00 UTC). A tenth of the objects are
deleted some weeks after their upload.
"""

import math
import random
from datetime import UTC, datetime, timedelta

from workers.tiering.accesslog import Access

START = datetime(2025, 1, 1, tzinfo=UTC)
KIB, MIB, GIB = 1024, 1024**2, 1024**3
SIZES = ((0.45, 200, 100 * KIB), (0.40, 128 * KIB, 20 * MIB), (0.15, 20 * MIB, 2 * GIB))
ZIPF = 1.1
HOURS = [1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 9, 8, 9, 9, 9, 8, 6, 4, 3, 2, 2, 1, 1]  # by UTC hour
BURST_CHANCE = 0.002  # a day, for an object older than BURST_AGE
BURST_AGE = 60
BACKGROUND = 0.01  # reads a day for an object of average popularity, whatever its age
DELETED = 0.1


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; the means here are small."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _size(rng: random.Random) -> int:
    pick = rng.random()
    for share, low, high in SIZES:
        if pick < share:
            return int(math.exp(rng.uniform(math.log(low), math.log(high))))
        pick -= share
    return SIZES[-1][2]


def _at(rng: random.Random, day: float) -> datetime:
    hour = rng.choices(range(24), weights=HOURS)[0]
    return START + timedelta(days=math.floor(day), hours=hour, seconds=rng.randrange(3600))


def synthesise(seed: int, objects: int, days: int) -> list[Access]:
    """A log of ``objects`` objects over ``days`` days, in time order."""
    rng = random.Random(seed)
    ranks = list(range(1, objects + 1))
    rng.shuffle(ranks)
    weights = [r**-ZIPF for r in ranks]
    scale = objects / sum(weights)  # average popularity 1
    log: list[Access] = []
    for i, weight in enumerate(weights):
        name, size = f"data/{i:06d}", _size(rng)
        born = rng.randrange(max(1, days * 3 // 4))
        tau = rng.uniform(3, 40)
        popularity = weight * scale
        end = days
        if rng.random() < DELETED:
            end = min(days, born + 1 + int(rng.expovariate(1 / 60)))
        put = START + timedelta(days=born, seconds=rng.randrange(3600))
        log.append(Access(put, name, size, "put"))
        burst, burst_end = 0.0, 0
        for day in range(born, end):
            age = day - born
            if age > BURST_AGE and rng.random() < BURST_CHANCE:
                burst = rng.uniform(2, 8)  # a day, for a few days
                burst_end = day + rng.randint(1, 3)
            if burst and day >= burst_end:
                burst = 0.0
            mean = popularity * (math.exp(-age / tau) + BACKGROUND) + burst
            for _ in range(_poisson(rng, mean)):
                when = max(_at(rng, day), put + timedelta(seconds=1))
                log.append(Access(when, name, size, "get"))
        if end < days:
            log.append(Access(_at(rng, end), name, size, "delete"))
    return sorted(log)
