"""Load on `gpt serve`: 1, 4, 16 and 32 concurrent streaming clients on 127.0.0.1.

Starts the real command (`serve --run RUN`) on a free port, then for each level of concurrency
runs a fixed number of requests (`--requests`, each a streamed /v1/completions of `--tokens`
new tokens at temperature 1, so that every reply runs to its length), with that many clients
each sending its next request when the last one ends. Reported per level:

    tokens/s     every client's tokens over the level's wall time (aggregate throughput)
    vs 1         tokens/s over one client's tokens/s (the goal at 16 clients: >= 4x)
    TTFT         time to first token: request sent -> first text event; p50 and p99
    per token    (last event - first event) / (tokens - 1) of each request; p50 and p99
    errors       non-200 answers, broken streams, short replies

The clients are asyncio coroutines speaking HTTP/1.1 over plain sockets: a thread or an HTTP
library per client would take CPU from the server on the same two cores. The server runs with
`--threads` torch threads (default 2, the machine's cores); the requests it cannot seat wait
in its queue, and that wait counts in TTFT.

    uv run python tools/bench/gpt_serve.py --run chatbase
    uv run python tools/bench/gpt_serve.py --run chatbase --levels 1,16 --requests 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "serve"), "--stage=gpt", f"--run={args.run}",
               f"--port={port}", f"--threads={args.threads}", f"--slots={args.slots}"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                return process if json.load(r)["status"] == "ok" else process
        except OSError:
            if process.poll() is not None:
                sys.exit("serve did not start:\n" + process.stdout.read())
            time.sleep(0.3)
    process.kill()
    sys.exit("serve did not answer /health within 120 s")


async def one_request(port: int, body: bytes) -> dict:
    """Send one streamed completion; returns its timings and token count (or an error)."""
    sent = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()  # fmt: skip
    writer.write(head + body)
    await writer.drain()
    status = (await reader.readline()).split()
    if len(status) < 2 or status[1] != b"200":
        writer.close()
        return {"error": f"status {status[1:2]}"}
    stamps: list[float] = []  # when each text event arrived
    tokens, done = 0, False
    async for raw in reader:  # headers, chunk sizes, then "data: ..." lines
        line = raw.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            done = True
            break
        event = json.loads(data)
        if "usage" in event:
            tokens = event["usage"]["completion_tokens"]
        elif event["choices"] and event["choices"][0]["text"]:
            stamps.append(time.perf_counter())
    writer.close()
    if not done or not stamps:
        return {"error": "stream ended early"}
    return {"ttft": stamps[0] - sent, "tokens": tokens,
            "per_token": (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)}  # fmt: skip


async def level(port: int, clients: int, requests: int, args: argparse.Namespace) -> dict:
    left = requests
    results: list[dict] = []

    async def client(i: int) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            body = json.dumps({"model": args.run, "prompt": args.prompt, "max_tokens": args.tokens,
                               "temperature": 1.0, "seed": len(results) + 1000 * i,
                               "stream": True}).encode()  # fmt: skip
            results.append(await one_request(port, body))

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - started
    good = [r for r in results if "error" not in r]
    errors = len(results) - len(good) + sum(r["tokens"] != args.tokens for r in good)

    def pct(key: str, q: float) -> float:
        values = sorted(r[key] for r in good)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {"clients": clients, "requests": len(results), "errors": errors, "wall": wall,
            "tokens_per_s": sum(r["tokens"] for r in good) / wall,
            "ttft_p50": pct("ttft", 0.5), "ttft_p99": pct("ttft", 0.99),
            "tok_p50": pct("per_token", 0.5), "tok_p99": pct("per_token", 0.99),
            "ttft_mean": statistics.fmean(r["ttft"] for r in good) if good else 0.0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--run", required=True, help="a gpt run (its name is the model name)")
    p.add_argument("--levels", default="1,4,16,32", help="concurrent clients, comma-separated")
    p.add_argument("--requests", type=int, default=64, help="requests per level")
    p.add_argument("--tokens", type=int, default=48, help="new tokens per request")
    p.add_argument("--prompt", default="ROMEO:\n", help="the prompt of every request")
    p.add_argument("--threads", type=int, default=2, help="the server's torch threads")
    p.add_argument("--slots", type=int, default=32, help="the server's --slots")
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    port = free_port()
    server = start_server(args, port)
    try:
        asyncio.run(level(port, 2, 4, args))  # warm-up: first calls, allocations
        rows = [asyncio.run(level(port, n, args.requests, args)) for n in levels]
    finally:
        server.terminate()
        server.wait(timeout=20)
    one = rows[0]["tokens_per_s"] if levels[0] == 1 else float("nan")
    print(f"gpt serve --run {args.run}: {args.requests} requests per level, {args.tokens} new "
          f"tokens each, server threads {args.threads}, slots {args.slots}, "
          f"cpu count {os.cpu_count()}")  # fmt: skip
    print(f"{'clients':>7} {'tokens/s':>9} {'vs 1':>6} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'tok p50':>8} {'tok p99':>8} {'errors':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['clients']:>7} {r['tokens_per_s']:>9.0f} {r['tokens_per_s'] / one:>5.1f}x "
              f"{r['ttft_p50'] * 1e3:>7.0f}ms {r['ttft_p99'] * 1e3:>7.0f}ms "
              f"{r['tok_p50'] * 1e3:>6.1f}ms {r['tok_p99'] * 1e3:>6.1f}ms "
              f"{r['errors']:>6}")  # fmt: skip


if __name__ == "__main__":
    main()
