#!/usr/bin/env python3
"""Realtime latency and fan-out, Directrix beside Directus, same machine, same client.

Not part of the test suite: it needs a running Directus (npm `directus`, Node 22) and a running
release Directrix, each with an admin token and a collection `articles` (id, title, t0us bigInteger).
A writer POSTs items at a fixed rate through each server's REST API, stamping `t0us` (client
clock, microseconds) in the row; every subscriber measures receipt time - t0 for each `create` event. The
Python client is the same for both, so its own overhead is common to both columns.

    pip install websockets
    python3 benches/realtime_vs_directus.py --directrix http://127.0.0.1:8055 \
        --directus http://127.0.0.1:8065 --token admintoken --rate 200 --seconds 10 --subscribers 1,100

How it was set up last (one private cluster, a database each):
- `initdb` (as `postgres`) with `wal_level=logical`, a unix socket only; `createdb` twice.
- Directrix: `DB_CONNECTION_STRING=postgres://postgres@localhost/<db>?host=<socket dir>&port=<port>
  PORT=8055 ADMIN_TOKEN=admintoken ADMIN_PASSWORD=… target/release/directrix serve`.
- Directus: `npm install directus@11.16.1`; `DB_CLIENT=pg DB_HOST=<socket dir> DB_PORT DB_DATABASE
  DB_USER=postgres KEY SECRET ADMIN_EMAIL ADMIN_PASSWORD ADMIN_TOKEN=admintoken PORT=8065
  WEBSOCKETS_ENABLED=true CACHE_ENABLED=false RATE_LIMITER_ENABLED=false`, then
  `node node_modules/directus/cli.js bootstrap` and `… start`. Under Node 20: the `isolated-vm`
  npm installs is built for it, and rebuilding it for Node 22 needs headers from nodejs.org.
- The same `POST /collections` on both: `articles` with `id` (integer, auto-increment primary
  key), `title` (string), `t0us` (bigInteger).
"""
import argparse
import asyncio
import http.client
import json
import statistics
import threading
import time
import urllib.parse

import websockets


def writer(base, token, rate, seconds, stop):
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while not stop.is_set():
        due = start + n * interval
        if due - start > seconds:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"title": f"row {n}", "t0us": int(time.time() * 1e6)})
        conn.request("POST", "/items/articles", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        conn.getresponse().read()
        n += 1
    return n


async def subscriber(ws_url, token, latencies, ready):
    async with websockets.connect(ws_url, max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "auth", "access_token": token}))
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "collection": "articles", "event": "create", "uid": "s",
                                  "query": {"fields": ["id", "title", "t0us"]}}))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("event") == "init":
                break
        ready.release()
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            if msg.get("event") == "create":
                now = time.time()
                for row in msg.get("data", []):
                    if isinstance(row, dict) and row.get("t0us") is not None:
                        latencies.append((now * 1e6 - int(row["t0us"])) / 1000.0)


async def measure(name, base, token, rate, seconds, subscribers):
    ws_url = base.replace("http", "ws", 1) + "/websocket"
    latencies = []
    ready = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(subscriber(ws_url, token, latencies, ready)) for _ in range(subscribers)]
    for _ in range(subscribers):
        await ready.acquire()
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    written = await loop.run_in_executor(None, writer, base, token, rate, seconds, stop)
    await asyncio.sleep(2.0)
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    expected = written * subscribers
    lat = sorted(latencies)
    pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")
    return {
        "server": name, "subscribers": subscribers, "written": written, "delivered": len(lat),
        "expected": expected, "msgs_per_s": round(len(lat) / elapsed),
        "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2), "max_ms": round(lat[-1], 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--directrix", default="http://127.0.0.1:8055")
    parser.add_argument("--directus", default="http://127.0.0.1:8065")
    parser.add_argument("--token", default="admintoken")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--subscribers", default="1,100")
    args = parser.parse_args()
    rows = []
    for n in [int(x) for x in args.subscribers.split(",")]:
        for name, base in [("directrix", args.directrix), ("directus", args.directus)]:
            rows.append(await measure(name, base, args.token, args.rate, args.seconds, n))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'server':10} {'subs':>5} {'delivered':>10} {'expected':>9} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in rows:
        print(f"{r['server']:10} {r['subscribers']:>5} {r['delivered']:>10} {r['expected']:>9} {r['msgs_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']!s:>8}")


if __name__ == "__main__":
    asyncio.run(main())
