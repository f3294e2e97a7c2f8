#!/usr/bin/env python3
"""Connection attacks against a Parley binary, with the figures issue 10 asks for.

    cargo build --release
    python3 scripts/attack.py                      # the open-file limit as the system sets it
    python3 scripts/attack.py --fd-limit 1024      # soft AND hard limit 1024: nothing to raise

Starts target/release/parley (default settings, fresh SQLite database in a temp dir) and runs:

  silent    N connections (default 1,500) that never send a byte, from one address and from
            ten, while a client elsewhere (127.0.0.200) calls /healthz every 100 ms.
            Reports: connections the server held, time until each was closed, healthz latency.
  trickle   200 connections sending a request header one byte a second.
  sigterm   SIGTERM while one client is mid-body and one mid-header: time to exit, exit code.

Standard library only; Linux (uses 127.0.0.0/8 source addresses and RLIMIT_NOFILE).
"""

import argparse
import http.client
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, port, workdir, fd_limit, extra_env=None):
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"sqlite://{workdir}/parley.db",
        "PARLEY_ADDR": f"127.0.0.1:{port}",
        "RUST_LOG": "info",
    })
    env.update(extra_env or {})

    def limit():
        if fd_limit:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    log = open(os.path.join(workdir, "parley.log"), "ab")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=log, preexec_fn=limit,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if healthz(port, timeout=1)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("the server did not come up; see " + os.path.join(workdir, "parley.log"))


def healthz(port, source="127.0.0.200", timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    t = time.perf_counter()
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        return r.status, time.perf_counter() - t
    finally:
        c.close()


class Prober(threading.Thread):
    """Calls /healthz every 100 ms from its own address, on a new connection each time."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.samples, self.failures = port, threading.Event(), [], 0

    def run(self):
        while not self.stop.is_set():
            try:
                status, dt = healthz(self.port)
                if status == 200:
                    self.samples.append(dt)
                else:
                    self.failures += 1
            except OSError:
                self.failures += 1
            time.sleep(0.1)


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt_ms(xs):
    if not xs:
        return "no samples"
    return (f"n={len(xs)} p50={pct(xs, 50) * 1000:.1f} ms p95={pct(xs, 95) * 1000:.1f} ms "
            f"max={max(xs) * 1000:.1f} ms")


def server_sockets(pid):
    """Sockets the server process holds open (its descriptors that are sockets)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        return -1
    return n


def kernel_connections(port):
    """Server-side TCP connections on `port` the kernel knows: established (accepted or waiting
    in the accept queue) and half-open (SYN received)."""
    est = syn = 0
    hexport = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(hexport):
                        est += parts[3] == "01"
                        syn += parts[3] == "03"
        except OSError:
            pass
    return est, syn


def open_silent(port, n, sources):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((sources[i % len(sources)], 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append((s, time.monotonic()))
    return socks


def watch_closes(socks, wait, on_tick=None):
    """Waits until every socket is closed by the server (or `wait` passes).
    Returns (seconds from connect to close per closed socket, how many got a 503, still open)."""
    sel = selectors.DefaultSelector()
    for s, t0 in socks:
        sel.register(s, selectors.EVENT_READ, t0)
    closed, shed, got = [], 0, {}
    deadline = time.monotonic() + wait
    next_tick = time.monotonic()
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (ConnectionResetError, OSError):
                data = b""
            if data:
                got[s] = got.get(s, b"") + data
                continue
            if got.get(s, b"").startswith(b"HTTP/1.1 503"):
                shed += 1
            closed.append(time.monotonic() - key.data)
            sel.unregister(s)
            s.close()
        if on_tick and time.monotonic() >= next_tick:
            on_tick(len(sel.get_map()))
            next_tick += 1.0
    still = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return closed, shed, still


def silent(pid, port, n, sources, label, wait):
    print(f"\n== silent: {n} connections from {len(sources)} address(es) ({label})")
    prober = Prober(port)
    prober.start()
    time.sleep(1.0)
    before = list(prober.samples)
    base = server_sockets(pid)
    t = time.monotonic()
    socks = open_silent(port, n, sources)
    print(f"opened {n} in {time.monotonic() - t:.2f} s")
    held, kernel = [], []

    def tick(_client_open):
        held.append(server_sockets(pid) - base)
        kernel.append(kernel_connections(port))

    closed, shed, still = watch_closes(socks, wait, on_tick=tick)
    prober.stop.set()
    prober.join()
    during = prober.samples[len(before):]
    print(f"sockets the server held, each second: {held[:14]}{' …' if len(held) > 14 else ''}")
    print(f"kernel (established, half-open), each second: {kernel[:14]}{' …' if len(kernel) > 14 else ''}")
    print(f"peak held by the server: {max(held) if held else 0}; closed by the server: {len(closed)} "
          f"(answered 503 and closed: {shed}); open on the client side after {wait:.0f} s: {still}")
    if closed:
        print(f"time from connect to close: min {min(closed):.2f} s, median "
              f"{statistics.median(closed):.2f} s, max {max(closed):.2f} s")
    print(f"/healthz before: {fmt_ms(before)}")
    print(f"/healthz during: {fmt_ms(during)}; failures: {prober.failures}")


def trickle(port, n, wait):
    print(f"\n== trickle: {n} connections sending a header one byte a second")
    socks = open_silent(port, n, ["127.0.0.1"])
    time.sleep(0.2)
    for s, _ in socks:
        try:
            s.send(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        except OSError:
            pass
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            for s, _ in socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            stop.wait(1.0)

    threading.Thread(target=drip, daemon=True).start()
    closed, _, still = watch_closes(socks, wait)
    stop.set()
    if closed:
        print(f"closed by the server: {len(closed)}, still open after {wait:.0f} s: {still}; "
              f"time to close: min {min(closed):.2f} s, median {statistics.median(closed):.2f} s, "
              f"max {max(closed):.2f} s")
    else:
        print(f"none closed; still open after {wait:.0f} s: {still}")


def sigterm(binary, fd_limit):
    print("\n== sigterm: one client mid-body, one mid-header (default 10 s shutdown deadline)")
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        proc = start(binary, port, d, fd_limit, {"PARLEY_BODY_TIMEOUT_SECS": "300",
                                                 "PARLEY_HEADER_TIMEOUT_SECS": "300"})
        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a")
        head = socket.create_connection(("127.0.0.1", port))
        head.sendall(b"GET /conversations HTTP/1.1\r\nHo")
        time.sleep(0.5)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
            print(f"exited {code} after {time.monotonic() - t:.2f} s")
        except subprocess.TimeoutExpired:
            proc.kill()
            print("still running 60 s after SIGTERM (killed)")
        body.close()
        head.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bin", default="target/release/parley")
    ap.add_argument("--connections", type=int, default=1500)
    ap.add_argument("--fd-limit", type=int, default=0,
                    help="soft and hard RLIMIT_NOFILE for the server (0: inherit)")
    ap.add_argument("--wait", type=float, default=25.0, help="seconds to watch each attack")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker needs descriptors too
    print(f"parley: {args.bin}; server open-file limit: "
          f"{args.fd_limit or 'inherited'} (this shell: soft {soft}, hard {hard})")
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        proc = start(args.bin, port, d, args.fd_limit)
        try:
            silent(proc.pid, port, args.connections, ["127.0.0.1"], "one attacker", args.wait)
            silent(proc.pid, port, args.connections, [f"127.0.0.{i}" for i in range(2, 12)],
                   "ten attackers", args.wait)
            trickle(port, 200, args.wait)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        with open(os.path.join(d, "parley.log"), encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        print("\nserver log, limits and warnings:")
        for line in lines:
            if any(k in line for k in ("open-file", "connection budget", "WARN", "ERROR")):
                print("  " + line.rstrip())
    sigterm(args.bin, args.fd_limit)


if __name__ == "__main__":
    main()
