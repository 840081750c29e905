#!/usr/bin/env python3
"""Posts the ingest benchmark's workload to a running `omniroute serve` and prints the server's
resident memory as it goes: how one long-running server's memory grows with the events it has
taken (the benchmark runs a fresh server per run, in its own process).

    ops/omniroute serve --http 127.0.0.1:18181 --data /tmp/load-data &
    bench/serve_load.py --port 18181 --events 5000000 --pid $!

The workload is bench.cpp's: 8 tenants, each with a queue (auto-accept) and 50 agents; then
conversations started, with a message, and ended by the customer, 10 ms of event time apart, in
POSTs of 999 events on one keep-alive connection. Every event has an id of its own (tenant,
kind, number): a repeated id would be acknowledged as a duplicate and change nothing.
"""
import argparse
import http.client
import json
import sys
import time

ORIGIN_S = 1795168800  # 2026-11-20T10:00:00Z


def resident_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


KIND_NAMES = {"s": "started", "m": "message", "e": "ended"}


def event(tenant, kind, n, ms, data):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ORIGIN_S + ms // 1000)) + ".%03dZ" % (ms % 1000)
    return json.dumps({"id": f"tenant{tenant}-{kind}{n}", "type": f"conversation.{KIND_NAMES[kind]}",
                       "tenant": f"tenant{tenant}", "time": stamp, "data": data})


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--port", type=int, required=True)
    args.add_argument("--events", type=int, default=2_000_000)
    args.add_argument("--pid", type=int, help="the server's process, to print its resident memory")
    a = args.parse_args()
    conn = http.client.HTTPConnection("127.0.0.1", a.port)

    def post(events):
        conn.request("POST", "/v1/events", "[" + ",".join(events) + "]", {"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 202:
            sys.exit(f"POST /v1/events answered {r.status}: {body[:300]!r}")
        answer = json.loads(body)
        if answer.get("duplicates"):
            sys.exit(f"the server took {answer['duplicates']} events as duplicates: the ids repeat")

    setup = []
    for t in range(8):
        setup.append(json.dumps({"id": f"tenant{t}-q", "type": "queue.configured", "tenant": f"tenant{t}",
                                 "time": "2026-11-20T00:00:00.000Z", "data": {"queue": "support", "auto_accept": True}}))
        for n in range(50):
            setup.append(json.dumps({"id": f"tenant{t}-a{n}", "type": "agent.logged_in", "tenant": f"tenant{t}",
                                     "time": "2026-11-20T00:00:00.001Z",
                                     "data": {"agent": f"agent{n}", "queues": ["support"], "capacity": {"chat": 3, "voice": 1}}}))
    post(setup)

    memory = (lambda: f" resident {resident_mib(a.pid)} MiB") if a.pid else (lambda: "")
    batch, sent, i, t0, next_report = [], 0, 0, time.time(), 250_000
    while sent < a.events:
        t, ms, c = i % 8, 1000 + i * 10, f"c{i}"
        batch.append(event(t, "s", i, ms, {"conversation": c, "customer": f"u{i % 5000}",
                                          "channel": "voice" if i % 5 == 0 else "web", "queue": "support"}))
        batch.append(event(t, "m", i, ms + 1, {"conversation": c, "from": "customer", "text": "my card was charged twice"}))
        batch.append(event(t, "e", i, ms + 2, {"conversation": c, "by": "customer"}))
        i += 1
        if len(batch) >= 999:
            post(batch)
            sent += len(batch)
            batch = []
            if sent >= next_report:
                print(f"{sent} events, {time.time() - t0:.0f} s,{memory()}", flush=True)
                next_report += 250_000
    print(f"end: {sent} events{memory()}")


if __name__ == "__main__":
    main()
