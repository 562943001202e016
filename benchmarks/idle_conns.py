#!/usr/bin/env python3
"""idle_conns.py: memory per idle keep-alive connection of an HTTP server, and many concurrent
keep-alive connections each served, for benchmarks/http_peers.sh.

usage: idle_conns.py --port P --pid PID [--hold 9000] [--total 10000] [--parallel 256]
                     [--settle 1.0] [--op-timeout 10] [--budget 120]

Against http://127.0.0.1:P/ (an http_hello-shaped server whose process id is PID):
  1. reads the server's VmRSS (/proc/PID/status) before;
  2. opens --hold keep-alive connections (at most --parallel connecting at a time, so the listen
     backlog never overflows), sends one `GET / HTTP/1.1` on each and reads its whole answer
     (status 200, Content-Length body "Hello, World!"), then leaves them open and idle;
  3. waits --settle seconds and reads VmRSS again: (RSS after - RSS before) / hold is the memory
     per idle keep-alive connection (KiB, 1 KiB = 1024 bytes; VmRSS counts resident pages);
  4. opens --total - --hold more the same way (all --total open at once), reads VmRSS, then sends a
     second request on every one of the --total connections at once and reads every answer: an
     idle connection that the server closed, reset or left unanswered is an error.
Every connect, send and receive is bounded by --op-timeout seconds, the whole run by --budget.
Prints key=value lines (rss_before_kib, rss_hold_kib, rss_per_conn_kib, rss_total_kib,
served_first, served_second, errors, ...) and a last line "RESULT ok" (0 errors; exit 0) or
"RESULT FAIL" (exit 1). Exit 2 on bad arguments or when the descriptor limit is too low.
Needs about --total + 20 descriptors: the caller raises `ulimit -n` (the server needs as many).
"""
import argparse
import asyncio
import collections
import resource
import socket
import sys
import time

BODY = b"Hello, World!"


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])  # "VmRSS:   1234 kB"
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class Client:
    def __init__(self, port, op_timeout):
        self.addr = ("127.0.0.1", port)
        self.request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self.op_timeout = op_timeout
        self.errors = collections.Counter()

    async def exchange(self, loop, sock):
        """Sends one request on `sock` and reads its whole answer; raises on anything but a 200
        with the hello body and nothing after it."""
        await asyncio.wait_for(loop.sock_sendall(sock, self.request), self.op_timeout)
        data = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                head = data[:end].decode("latin-1").split("\r\n")
                if not head[0].startswith("HTTP/1.1 200 "):
                    raise ValueError(f"status line {head[0]!r}")
                length = None
                for h in head[1:]:
                    name, _, value = h.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length is None:
                    raise ValueError("no Content-Length")
                if len(data) >= end + 4 + length:
                    if data[end + 4:] != BODY:
                        raise ValueError(f"body {data[end + 4:]!r}")
                    return
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), self.op_timeout)
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk

    def record(self, e):
        self.errors[f"{type(e).__name__}: {e}"[:120]] += 1

    async def open_one(self, loop, sem, out):
        async with sem:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, self.addr), self.op_timeout)
                await self.exchange(loop, sock)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                sock.close()
                self.record(e)
                return
            out.append(sock)

    async def open_many(self, n, parallel, out):
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(parallel)
        await asyncio.gather(*(self.open_one(loop, sem, out) for _ in range(n)))

    async def again(self, socks, parallel):
        """A second request on every open connection; returns how many were answered."""
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(parallel)
        served = 0

        async def one(sock):
            nonlocal served
            async with sem:
                try:
                    await self.exchange(loop, sock)
                    served += 1
                except Exception as e:  # noqa: BLE001
                    self.record(e)

        await asyncio.gather(*(one(s) for s in socks))
        return served


async def run(args):
    client = Client(args.port, args.op_timeout)
    socks = []
    t0 = time.monotonic()
    rss_before = vmrss_kib(args.pid)
    print(f"rss_before_kib={rss_before}")
    await client.open_many(args.hold, args.parallel, socks)
    served_hold = len(socks)
    print(f"opened_hold={served_hold} in {time.monotonic() - t0:.1f}s")
    await asyncio.sleep(args.settle)
    rss_hold = vmrss_kib(args.pid)
    print(f"hold={args.hold}")
    print(f"rss_hold_kib={rss_hold}")
    print(f"rss_per_conn_kib={(rss_hold - rss_before) / args.hold:.2f}")
    await client.open_many(args.total - args.hold, args.parallel, socks)
    print(f"served_first={len(socks)}")
    await asyncio.sleep(args.settle)
    rss_total = vmrss_kib(args.pid)
    print(f"total={args.total}")
    print(f"rss_total_kib={rss_total}")
    print(f"rss_per_conn_total_kib={(rss_total - rss_before) / args.total:.2f}")
    t1 = time.monotonic()
    served_second = await client.again(socks, max(args.parallel, 2048))
    print(f"served_second={served_second} (all {len(socks)} open at once) in {time.monotonic() - t1:.1f}s")
    for s in socks:
        s.close()
    return client, served_second


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--hold", type=int, default=9000)
    p.add_argument("--total", type=int, default=10000)
    p.add_argument("--parallel", type=int, default=256)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--op-timeout", type=float, default=10.0)
    p.add_argument("--budget", type=float, default=120.0)
    args = p.parse_args()
    if not (0 < args.port < 65536 and 0 < args.hold <= args.total <= 60000 and 0 < args.parallel <= 10000
            and 0 <= args.settle <= 60 and 0 < args.op_timeout <= 600 and 0 < args.budget <= 3600):
        p.error("an argument is out of range")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.total + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print(f"idle_conns: needs {need} descriptors, the hard limit is {hard}", file=sys.stderr)
            sys.exit(2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        client, served_second = asyncio.run(asyncio.wait_for(run(args), args.budget))
    except asyncio.TimeoutError:
        print(f"errors=budget of {args.budget}s exceeded")
        print("RESULT FAIL")
        sys.exit(1)
    errors = sum(client.errors.values())
    print(f"errors={errors}")
    for what, count in client.errors.most_common(5):
        print(f"error: {count} x {what}")
    ok = errors == 0 and served_second == args.total
    print("RESULT ok" if ok else "RESULT FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
