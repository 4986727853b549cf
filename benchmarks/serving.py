"""Serving on a SYNTHETIC 1,000,000-item catalogue: HNSW recall against exact search, then the latency and
throughput of POST /recommend on a real server on 127.0.0.1, driven by a load generator.

    python benchmarks/serving.py build runs/bench-serving-1m            # the synthetic run (under a minute)
    python benchmarks/serving.py recall runs/bench-serving-1m           # recall@100 of HNSW vs exact search
    python benchmarks/serving.py load runs/bench-serving-1m --rate 300 --seconds 60 --serve --workers 2
    python benchmarks/serving.py exact RUN --requests 256 --batch 32     # a trained run with prior heads

(the first `recall` or `serve` builds the HNSW index and saves it in the run: tens of minutes on 2 cores)

SYNTHETIC, not trained: the log, the item vectors and the model weights are generated, because no public
log has a million items that a 2-core machine could train on. What is real is everything the benchmark
measures: the run folder, `intentrec serve`, the HNSW index, the HTTP stack and the requests.
- The log: 100,000 users with 20 events each over 1,000,000 items (every item at least once), 50
  categories; it only gives the model histories to read and the server users to look up.
- The item vectors (the model's embedding table) are drawn to look like trained SASRec embeddings rather
  than white noise, which no index (and no trained model) sees: a shared mean direction, clusters, and a
  decaying spectrum, with the scale measured on SASRec trained on Amazon Beauty (BENCHMARKS.md): mean
  vector norm 1.3, item norms 1.1-2.9. White noise in 192 dimensions has no neighbourhoods to find.
- The backbone (SASRec, the default config: width 192, 2 blocks, max_len 50) has random weights except
  that its position embeddings and its blocks' output projections are zero: the blocks compute all that
  a trained one computes (so latency is real) but add nothing, so the user vector is the normalised
  vector of the last item, and it ranks the catalogue with the heavy-tailed scores of a trained model.
  `--random-backbone` keeps every weight random: its queries score the items like Gaussian noise, a
  worst case for any index that no trained model produces.

`exact` times, on a trained run with prior heads, the requests that score the whole catalogue instead of
searching the index (merge "mix", or the backbone's head weighed in), in batches: one forward pass per
batch, then the catalogue scored request by request (as before the server batched the scoring) or for the
whole batch at once. The requests bring their histories, so the model runs for each; the script checks
that both ways rank the same.

`recall` works on any run folder, e.g. a trained one: `python benchmarks/serving.py recall RUN --users 2000`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import polars as pl
import torch
import uvloop

from intentrec.config import RunConfig
from intentrec.data.dataset import Dataset
from intentrec.data.raw import RawLog
from intentrec.data.sequences import pad_left
from intentrec.data.split import split_dataset
from intentrec.models.build import build_model
from intentrec.recommender import Recommender
from intentrec.run import RunFiles
from intentrec.serving.index import IndexConfig, ItemIndex

N_CATEGORIES = 50


# --- the synthetic run -------------------------------------------------------------------------------------


def synthetic_vectors(n_items: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_items, dim)`` float32 item vectors shaped like trained ones (see the module docstring)."""
    spectrum = (0.03 * np.arange(1, dim + 1) ** -0.5).astype(np.float32)  # per-direction variance
    mean = rng.standard_normal(dim).astype(np.float32)
    mean *= 1.3 / np.linalg.norm(mean)
    n_clusters = max(1, n_items // 1000)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32) * np.sqrt(spectrum)
    vectors = np.empty((n_items, dim), dtype=np.float32)
    for start in range(0, n_items, 100_000):  # in blocks: the noise of all items at once is GBs
        stop = min(start + 100_000, n_items)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * np.sqrt(spectrum)
        vectors[start:stop] = mean + centres[rng.integers(0, n_clusters, stop - start)] + noise
    return vectors


def synthetic_log(n_items: int, n_users: int, events: int, rng: np.random.Generator) -> RawLog:
    n = n_users * events
    assert n >= n_items, "every item must occur at least once"
    items = np.concatenate([rng.permutation(n_items), rng.integers(0, n_items, n - n_items)])
    rng.shuffle(items)
    interactions = pl.DataFrame(
        {
            "user": np.repeat(np.arange(n_users, dtype=np.int64), events),
            "item": items.astype(np.int64),
            "timestamp": 1_600_000_000 + 60 * np.tile(np.arange(events, dtype=np.int64), n_users),
            "event": pl.Series(["click"] * n, dtype=pl.String),
            "value": pl.Series([None] * n, dtype=pl.Float64),
            "file": pl.Series(["synthetic"] * n, dtype=pl.String),
            "line": np.arange(2, n + 2, dtype=np.int64),
        }
    )
    # a few big categories and many small ones, 1 or 2 per item
    weights = 1.0 / np.arange(1, N_CATEGORIES + 1)
    weights /= weights.sum()
    first = rng.choice(N_CATEGORIES, n_items, p=weights)
    second = np.where(rng.random(n_items) < 0.5, rng.choice(N_CATEGORIES, n_items, p=weights), first)
    categories = [
        [f"c{a}"] if a == b else [f"c{a}", f"c{b}"]
        for a, b in zip(first.tolist(), second.tolist(), strict=True)
    ]
    metadata = pl.DataFrame(
        {
            "item": np.arange(n_items, dtype=np.int64),
            "title": [f"synthetic item {i}" for i in range(n_items)],
            "categories": pl.Series(categories, dtype=pl.List(pl.String)),
        }
    )
    return RawLog(interactions.lazy(), metadata, "synthetic", "synthetic", "unix_seconds")


def _pass_through(model: torch.nn.Module, n_blocks: int) -> None:
    """Zero the position embeddings and each block's output projections (attention and feed-forward):
    the blocks still compute everything, but add nothing, so the user vector is the last item's own."""
    zeroed = 0
    for name, parameter in model.named_parameters():
        if name.endswith(("position_embedding.weight", "attention.out.weight", "attention.out.bias")) or (
            ".ffn.3." in name  # the feed-forward's second linear layer
        ):
            parameter.zero_()
            zeroed += 1
    assert zeroed == 1 + 4 * n_blocks, "SASRec's parameter names changed: update _pass_through"


def build(
    out: Path, n_items: int, n_users: int, events: int, dim: int, random_backbone: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    dataset = Dataset.from_raw(synthetic_log(n_items, n_users, events, rng), name=f"synthetic-{n_items}")
    config = RunConfig.from_dict({"data": {"path": f"synthetic-{n_items}"}, "model": {"dim": dim}})
    recommender = Recommender(config)
    recommender.dataset = dataset
    recommender.split = split_dataset(dataset, config.split)
    recommender.model = build_model(config, n_items)
    with torch.no_grad():
        vectors = synthetic_vectors(n_items, config.model.dim, rng)
        recommender.model.item_embedding.weight[1:] = torch.from_numpy(vectors)
        if not random_backbone:
            _pass_through(recommender.model, config.model.n_blocks)
    recommender.metrics = {
        "synthetic": "synthetic log and item vectors, "
        + ("random backbone" if random_backbone else "pass-through backbone")
        + "; not trained"
    }
    recommender.save(out, overwrite=True)  # `build` again replaces the synthetic run
    print(f"wrote the SYNTHETIC run {out}: {n_users:,} users, {n_items:,} items "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip


# --- recall of the approximate index -----------------------------------------------------------------------


def recall(
    run: Path, n_users: int, k: int, ef_searches: list[int], config: IndexConfig, threads: int
) -> None:
    recommender = Recommender.load(run)
    vectors = np.ascontiguousarray(recommender.item_vectors().numpy(), dtype=np.float32)
    rows = np.random.default_rng(0).choice(len(recommender.history), size=n_users, replace=False)
    max_len = recommender.config.model.max_len
    asked = recommender.catalogue.ask(recommender.history)  # now, for a model that reads the request time
    queries = np.concatenate(
        [
            recommender.user_vectors(pad_left(asked, block, max_len)).numpy()
            for block in np.array_split(rows, 16)
        ]
    )
    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    print(f"exact search: {n_users} queries in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    index = ItemIndex.open(vectors, config.model_copy(update={"kind": "hnsw"}), RunFiles(run).index)
    print(f"HNSW index (M {config.m}, efConstruction {config.ef_construction}) ready in "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    faiss.omp_set_num_threads(1)  # one query per core, as the server runs them
    print(f"{'efSearch':>8}  recall@{k} mean  min    p50 ms  p99 ms")
    for ef in ef_searches:
        index.config = index.config.model_copy(update={"ef_search": ef})
        recalls, seconds = [], []
        for query, expected in zip(queries, truth, strict=True):
            started = time.perf_counter()
            found, _ = index.search(query, k)
            seconds.append(time.perf_counter() - started)
            recalls.append(len(np.intersect1d(found, expected)) / k)
        ms = 1000 * np.percentile(seconds, [50, 99])
        print(f"{ef:>8}  {np.mean(recalls):>12.4f}  {np.min(recalls):.2f}  {ms[0]:>6.2f}  {ms[1]:>6.2f}")


# --- latency and throughput of the real server -------------------------------------------------------------


def load(
    run: Path, rate: float, seconds: float, warmup: float, k: int, connections: int, serve: list[str]
) -> None:
    users = pl.read_parquet(RunFiles(run).dataset / "users.parquet")["user"].to_list()
    port = _free_port()
    command = [str(Path(sys.executable).parent / "intentrec"), "serve", str(run), "--port", str(port), *serve]
    print("server:", " ".join(command))
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(port, server)
        server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
        # uvloop: a third less client work per request than asyncio's own loop, on cores the server needs.
        # The generator's garbage collector is off while it drives: its full collections walk the tens
        # of thousands of request tasks it keeps, stalling the loop that times the requests (a 150 ms
        # p99 spike in one 10 s window of both 60 s runs while it was on). The server's is untouched.
        gc.disable()
        try:
            result = uvloop.run(_drive(port, users, rate, seconds, warmup, k, connections))
        finally:
            gc.enable()
        sent = int((warmup + seconds) * rate)  # the CPU is counted over the warm-up too
        result["server_cpu_ms_per_request"] = round(1000 * (_cpu_seconds(server.pid) - server_cpu) / sent, 2)
        result["client_cpu_ms_per_request"] = round(1000 * (time.process_time() - client_cpu) / sent, 2)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(json.dumps(result, indent=2))


async def _drive(
    port: int, users: list, rate: float, seconds: float, warmup: float, k: int, connections: int
) -> dict:
    """Open loop: request i is due at i / rate, whatever happened to the others, and its latency counts
    from then, so a slow server is charged the queueing it causes (no coordinated omission)."""
    bodies = [json.dumps({"user": user, "k": k}).encode() for user in random.Random(0).choices(users, k=4096)]
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await _Connection.open(port))
    latencies: list[float] = []
    sent_at: list[float] = []  # when each counted request was due, for the latency over time
    # how late the generator itself started each request: a stall of this process (or of the machine)
    # shows here, one of the server only in the latencies
    start_lags: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def one(due: float, body: bytes, counted: bool) -> None:
        nonlocal errors
        start_lag = time.perf_counter() - due
        connection = await pool.get()
        try:
            status, payload = await connection.post("/recommend", body)
            ok = status == 200 and len(json.loads(payload)["items"]) == k
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status, ok = -1, False
            connection = await _Connection.open(port)
        pool.put_nowait(connection)
        if counted:
            latencies.append(time.perf_counter() - due)
            sent_at.append(due)
            start_lags.append(start_lag)
            statuses[status] = statuses.get(status, 0) + 1
            errors += not ok

    total = int((warmup + seconds) * rate)
    tasks = []
    start = time.perf_counter() + 0.1
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, bodies[i % len(bodies)], i >= warmup * rate)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - (start + warmup)
    ms = 1000 * np.percentile(latencies, [50, 90, 99, 99.9])
    return {
        "rate_asked_per_s": rate,
        "requests": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(ms[0]), 2),
        "p90_ms": round(float(ms[1]), 2),
        "p99_ms": round(float(ms[2]), 2),
        "p99.9_ms": round(float(ms[3]), 2),
        "max_ms": round(1000 * max(latencies), 2),
        "p99_ms_per_10s": _p99_per_window(np.array(sent_at) - (start + warmup), np.array(latencies), 10.0),
        "generator_start_lag_p99_ms_per_10s": _p99_per_window(
            np.array(sent_at) - (start + warmup), np.array(start_lags), 10.0
        ),
        "k": k,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }


class _Connection:
    """A keep-alive HTTP/1.1 connection that sends JSON POSTs: the least client work per request, since
    the load generator shares the machine's two cores with the server (httpx spends ~3 ms per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed a connection left idle (uvicorn: after 5 s): reconnect
            self.reader, self.writer = await asyncio.open_connection(*self.writer.get_extra_info("peername"))
            self.writer.write(request)
            status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


def _p99_per_window(sent: np.ndarray, latencies: np.ndarray, window: float) -> list[float]:
    """p99 latency (ms) of the requests sent in each ``window`` seconds: a steady tail, or a burst?"""
    which = (sent // window).astype(np.int64)
    return [round(1000 * float(np.percentile(latencies[which == w], 99)), 1) for w in np.unique(which)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its descendants so far (Linux /proc)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile
            continue
    return total


def exact(run: Path, n_requests: int, batch: int, repeats: int) -> None:
    from intentrec.models.heads import Steering
    from intentrec.serving.schemas import RecommendRequest
    from intentrec.serving.service import Service

    service = Service.load(run)
    if service.heads is None:
        raise SystemExit(f"{run}: this run has no prior heads")
    history, max_len = service.recommender.history, service.recommender.config.model.max_len
    ids = service.catalogue.item_ids
    rng = np.random.default_rng(0)
    requests = []  # histories brought in the request: the model runs for each, as for a new user
    for row in rng.choice(len(history), n_requests, replace=len(history) < n_requests):
        events = [{"item": ids[item]} for item in history.row(row)[-max_len:].tolist()]
        requests.append(
            service.prepare(RecommendRequest(history=events, k=100, steering=Steering(merge="mix")))
        )
    one_by_one, batched = [], []
    for _ in range(repeats):
        alone, together = [], []
        start = time.perf_counter()
        for at in range(0, n_requests, batch):  # as before: one forward pass, then scored one by one
            chunk = requests[at : at + batch]
            vectors = service.vectors(chunk)
            alone += [service.search(each, vector) for each, vector in zip(chunk, vectors, strict=True)]
        one_by_one.append(time.perf_counter() - start)
        start = time.perf_counter()
        for at in range(0, n_requests, batch):
            together += service.rank(requests[at : at + batch])
        batched.append(time.perf_counter() - start)
    same = sum(a[0].tolist() == t[0].tolist() for a, t in zip(alone, together, strict=True))
    # the same items may swap places where scores tie to float32 rounding (a batched matmul sums in
    # another order than one row's)
    gap = max(
        float(np.abs(np.sort(a[1]) - np.sort(t[1])).max()) for a, t in zip(alone, together, strict=True)
    )
    first, second = float(np.median(one_by_one)), float(np.median(batched))
    items, heads = service.catalogue.n_items, len(service.heads.names)
    print(f"{run}: {n_requests} 'mix' requests in batches of {batch}, {items} items, {heads} heads")
    print(f"scored one by one {n_requests / first:8.1f} requests/s  ({first:.3f} s, median of {repeats})")
    speedup = first / second
    print(f"scored together   {n_requests / second:8.1f} requests/s  ({second:.3f} s): {speedup:.2f}x")
    print(f"identical top 100: {same} of {n_requests}; largest difference of a sorted score: {gap:.1e}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(port: int, server: subprocess.Popen, timeout: float = 1800) -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(1)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_args = commands.add_parser("build", help="write the synthetic run")
    build_args.add_argument("out", type=Path)
    build_args.add_argument("--items", type=int, default=1_000_000)
    build_args.add_argument("--users", type=int, default=100_000)
    build_args.add_argument("--events", type=int, default=20)
    build_args.add_argument("--dim", type=int, default=RunConfig().model.dim, help="model width")
    build_args.add_argument(
        "--random-backbone",
        action="store_true",
        help="keep every backbone weight random (worst-case queries)",
    )
    build_args.add_argument("--seed", type=int, default=0)
    recall_args = commands.add_parser("recall", help="recall@k of HNSW against exact search")
    recall_args.add_argument("run", type=Path)
    recall_args.add_argument(
        "--users", type=int, default=1000, help="queries: user vectors of this many users"
    )
    recall_args.add_argument("--k", type=int, default=100)
    recall_args.add_argument("--ef-search", type=int, nargs="+", default=[256, 512, 768, 1024])
    recall_args.add_argument("--m", type=int, default=IndexConfig().m)
    recall_args.add_argument("--ef-construction", type=int, default=IndexConfig().ef_construction)
    recall_args.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="for exact search and the build"
    )
    load_args = commands.add_parser("load", help="latency and throughput of POST /recommend")
    load_args.add_argument("run", type=Path)
    load_args.add_argument("--rate", type=float, default=300, help="requests per second (open loop)")
    load_args.add_argument("--seconds", type=float, default=60)
    load_args.add_argument("--warmup", type=float, default=5)
    load_args.add_argument("--k", type=int, default=100)
    load_args.add_argument("--connections", type=int, default=64)
    load_args.add_argument(
        "--serve", nargs=argparse.REMAINDER, default=[], help="extra `intentrec serve` options"
    )
    exact_args = commands.add_parser("exact", help="requests scoring the whole catalogue, batched or not")
    exact_args.add_argument("run", type=Path)
    exact_args.add_argument("--requests", type=int, default=256)
    exact_args.add_argument("--batch", type=int, default=32)
    exact_args.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "build":
        build(args.out, args.items, args.users, args.events, args.dim, args.random_backbone, args.seed)
    elif args.command == "recall":
        config = IndexConfig(m=args.m, ef_construction=args.ef_construction)
        recall(args.run, args.users, args.k, args.ef_search, config, args.threads)
    elif args.command == "exact":
        exact(args.run, args.requests, args.batch, args.repeats)
    else:
        load(args.run, args.rate, args.seconds, args.warmup, args.k, args.connections, args.serve)


if __name__ == "__main__":
    main()
