"""Traffic to replay: request traces (Azure CSV, Mooncake JSONL), rate envelopes with lengths, a synthetic day.

A trace is either explicit requests (replayed one by one) or a rate envelope (minute offsets and requests/minute)
whose requests are Poisson arrivals with lengths drawn from a length sample; the simulator replays the first per
request and the second as an aggregate per time step.
"""

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
# Without a lengths file: the Azure 2023 conversation means (1,155 input, 211 output tokens), log-normally spread.
MEAN_INPUT, MEAN_OUTPUT = 1155.0, 211.0


# Prefix blocks of the Mooncake format: `hash_ids[k]` names the k-th 512-token block of the prompt.
HASH_BLOCK_TOKENS = 512
Hashes = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Lengths:
    """Request lengths, in trace order; with prefix block hashes where the trace has them."""

    input: Ints
    output: Ints
    hashes: Hashes | None = None

    def pick(self, index: Ints) -> "Lengths":
        hashes = tuple(self.hashes[i] for i in index) if self.hashes is not None else None
        return Lengths(self.input[index], self.output[index], hashes)


@dataclass(frozen=True)
class Requests:
    arrival_s: Floats  # sorted, from 0
    lengths: Lengths

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) + 1.0 if len(self.arrival_s) else 0.0


@dataclass(frozen=True)
class Envelope:
    minute: Floats  # offsets of the points, from 0
    per_minute: Floats  # requests per minute at each point (linear between points)
    lengths: Lengths  # the population request lengths are drawn from

    @property
    def duration_s(self) -> float:
        step = float(self.minute[1] - self.minute[0]) if len(self.minute) > 1 else 1.0
        return (float(self.minute[-1]) + step) * 60

    def rate_at(self, t_s: Floats) -> Floats:
        return np.interp(t_s / 60, self.minute, self.per_minute) / 60


Trace = Requests | Envelope


def load(path: Path, lengths: Path | None, seed: int) -> Trace:
    """Any supported file; the format is told by its first line."""
    with path.open() as f:
        first = f.readline()
    if first.lstrip().startswith("{"):
        return _mooncake(path)
    header = first.strip().split(",")
    if header[:1] == ["TIMESTAMP"]:
        return _azure(path)
    if header[:2] == ["minute_offset", "req_per_min"]:
        rows = _rows(path)
        sample = load_lengths(lengths) if lengths else synthetic_lengths(20_000, seed)
        return Envelope(np.array([float(r[0]) for r in rows]), np.array([float(r[1]) for r in rows]), sample)
    raise ValueError(f"{path}: unknown trace format (header {first.strip()[:60]!r})")


def load_lengths(path: Path) -> Lengths:
    """Request lengths from an Azure CSV or a `num_prefill_tokens,num_decode_tokens` CSV (e.g. ShareGPT)."""
    if path.suffix == ".jsonl":
        return _mooncake(path).lengths
    with path.open() as f:
        reader = csv.DictReader(f)
        names = reader.fieldnames or []
        key = (
            ("ContextTokens", "GeneratedTokens")
            if "ContextTokens" in names
            else ("num_prefill_tokens", "num_decode_tokens")
        )
        rows = [(int(r[key[0]]), int(r[key[1]])) for r in reader]
    return _lengths(rows)


def _lengths(rows: list[tuple[int, int]]) -> Lengths:
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return Lengths(np.maximum(pairs[:, 0], 1), np.maximum(pairs[:, 1], 1))


def _rows(path: Path) -> list[list[str]]:
    with path.open() as f:
        return list(csv.reader(f))[1:]


def _azure(path: Path) -> Requests:
    rows = _rows(path)
    stamps = [datetime.fromisoformat(r[0][:26]).timestamp() for r in rows]
    start = min(stamps)
    order = np.argsort(stamps, kind="stable")
    arrival = np.array(stamps)[order] - start
    lengths = _lengths([(int(r[1]), int(r[2])) for r in rows])
    return Requests(arrival, lengths.pick(order))


def _mooncake(path: Path) -> Requests:
    with path.open() as f:
        records = [json.loads(line) for line in f if line.strip()]
    records.sort(key=lambda r: r["timestamp"])
    arrival = np.array([r["timestamp"] / 1000 for r in records], dtype=np.float64)
    lengths = _lengths([(r["input_length"], r["output_length"]) for r in records])
    hashes = tuple(tuple(int(h) for h in r.get("hash_ids") or ()) for r in records)
    return Requests(arrival - arrival[0], Lengths(lengths.input, lengths.output, hashes if any(hashes) else None))


def synthetic_lengths(
    n: int, seed: int, mean_input: float = MEAN_INPUT, mean_output: float = MEAN_OUTPUT, sigma: float = 0.8
) -> Lengths:
    """Log-normal prompt and output lengths with these means (default the Azure conversation's)."""
    rng = np.random.default_rng(seed)
    mu_in, mu_out = math.log(mean_input) - sigma**2 / 2, math.log(mean_output) - sigma**2 / 2
    return Lengths(
        np.maximum(rng.lognormal(mu_in, sigma, n), 1).astype(np.int64),
        np.maximum(rng.lognormal(mu_out, sigma, n), 1).astype(np.int64),
    )


def synthetic(hours: float, mean_rps: float, lengths: Lengths, seed: int, bursts: int = 2) -> Envelope:
    """A diurnal load (peak 1.8x the trough, one cycle a day) with `bursts` of x5 for 5 minutes at random times."""
    rng = np.random.default_rng(seed)
    minute = np.arange(0.0, hours * 60)
    day = 1 + 0.3 * np.sin(2 * np.pi * (minute / 1440 - 0.25))
    per_minute = mean_rps * 60 * day
    for start in rng.uniform(0, max(1.0, hours * 60 - 5), bursts).astype(int):
        per_minute[start : start + 5] *= 5
    return Envelope(minute, per_minute, lengths)


def with_burst(
    mean_rps: float, minutes: int, at_minute: int, factor: float, length_minutes: int, lengths: Lengths
) -> Envelope:
    """A steady load with one burst: `factor` times the load for `length_minutes` from `at_minute`."""
    per_minute = np.full(minutes, mean_rps * 60)
    per_minute[at_minute : at_minute + length_minutes] *= factor
    return Envelope(np.arange(0.0, minutes), per_minute, lengths)


def scaled(trace: Trace, factor: float, seed: int) -> Trace:
    """`factor` times the load: envelopes scale their rate; request traces thin or replicate requests (jittered)."""
    if isinstance(trace, Envelope):
        return Envelope(trace.minute, trace.per_minute * factor, trace.lengths)
    rng = np.random.default_rng(seed)
    copies = np.floor(factor) + (rng.random(len(trace.arrival_s)) < factor - math.floor(factor))
    index = np.repeat(np.arange(len(trace.arrival_s)), copies.astype(np.int64))
    arrival = trace.arrival_s[index] + np.where(np.diff(index, prepend=-1) == 0, rng.random(len(index)), 0.0)
    order = np.argsort(arrival, kind="stable")
    return Requests(arrival[order], trace.lengths.pick(index[order]))


def relengthen(trace: Requests, lengths: Lengths, seed: int) -> Requests:
    """The same arrivals (their burstiness) with lengths drawn from another population."""
    pick = np.random.default_rng(seed).integers(0, len(lengths.input), len(trace.arrival_s))
    return Requests(trace.arrival_s, lengths.pick(pick))


def materialize(envelope: Envelope, seed: int) -> Requests:
    """Poisson arrivals under the envelope (per second), with lengths drawn from its sample."""
    rng = np.random.default_rng(seed)
    seconds = np.arange(0.0, envelope.duration_s)
    counts = rng.poisson(envelope.rate_at(seconds))
    arrival = np.repeat(seconds, counts) + rng.random(int(counts.sum()))
    arrival.sort()
    pick = rng.integers(0, len(envelope.lengths.input), len(arrival))
    return Requests(arrival, envelope.lengths.pick(pick))


def mixed(a: Lengths, b: Lengths, share_b: float, n: int, seed: int) -> Lengths:
    """A length population drawing `share_b` of its requests from b and the rest from a."""
    rng = np.random.default_rng(seed)
    from_b = rng.random(n) < share_b
    ia, ib = rng.integers(0, len(a.input), n), rng.integers(0, len(b.input), n)
    return Lengths(np.where(from_b, b.input[ib], a.input[ia]), np.where(from_b, b.output[ib], a.output[ia]))
