#!/usr/bin/env python3
"""Writes link/startup-order.txt: the functions the server runs while it starts and idles, for the
linker to lay out together (build.rs passes the file to lld as --symbol-ordering-file).

    PARLEY_LINK_MAP=/tmp/release.map cargo build --release
    cp target/release/parley /tmp/parley-release
    PARLEY_LINK_MAP=/tmp/bench.map cargo bench --bench load --no-run
    python3 scripts/startup-order.py /tmp/parley-release /tmp/release.map \
        target/release/parley /tmp/bench.map
    cargo build --release        # links with the new order (and cargo bench, for its build)

Symbol names carry a hash of the cargo profile, and `cargo bench` builds the server in the
`bench` profile, so the file holds the names of both builds (lld skips the ones it does not see).

Run it again after updating dependencies (dev-dependencies too: they change the bench build's
names) or the compiler: symbol names carry hashes that change
with them, and a function whose name is no longer in the file goes back to its default place.

Why: the kernel maps a file page together with its neighbours (fault-around, 64 KiB; more with
large page-cache folios), so code run once at start, scattered over an 18 MB text segment, keeps
most of the binary resident (see docs/performance.md, "Idle RSS"). Laid out together, it fits in
a few MiB.

How: the server runs under valgrind's callgrind (a fresh SQLite database, the /healthz poll the
benchmark makes, a login page, one second idle); every address callgrind saw run is looked up in
the link map (which input section, i.e. which function, holds it) and those functions' symbols
are written in their current address order. The profile must be the one the file will be used
with (`-C metadata`, hence the names, depends on it; the link options from build.rs do not).
Needs valgrind; Linux, x86_64 only.
"""

import bisect
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "link", "startup-order.txt")
PREFIXES = (".text.unlikely.", ".text.hot.", ".text.startup.", ".text.exit.", ".text.split.", ".text.")


def sections(map_path):
    """(start, end, symbol) of every .text input section in an lld link map, sorted by start."""
    out = []
    # lld: "     VMA      LMA     Size Align Out     In      Symbol"
    line_re = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S.*?:\((\.text\.[^)]+)\)\s*$")
    with open(map_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = line_re.match(line)
            if not m:
                continue
            start, size, sec = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if size == 0:
                continue
            for p in PREFIXES:
                if sec.startswith(p):
                    out.append((start, start + size, sec[len(p):]))
                    break
    out.sort()
    return out


def get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def executed_addresses(binary):
    """Runs the server under callgrind; returns the addresses (as in the ELF file, which is how
    callgrind writes them) of the binary's instructions that ran."""
    tmp = tempfile.mkdtemp(prefix="parley-order-")
    out = os.path.join(tmp, "callgrind.out")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        "valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-strings=no",
        "--compress-pos=no", f"--callgrind-out-file={out}",
        binary, "--addr", f"127.0.0.1:{port}", "--database-url", f"sqlite://{tmp}/p.db",
        "--static-dir", os.path.join(ROOT, "static"),
    ]
    env = dict(os.environ, RUST_LOG="warn")
    log = open(os.path.join(tmp, "log"), "w")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 300
        while True:
            try:
                if get(port, "/healthz").startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                sys.exit(f"the server did not answer; see {tmp}/log")
            time.sleep(0.2)
        get(port, "/login")
        time.sleep(1)
        # Dump what ran so far (start-up and idle), then stop.
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    real = os.path.realpath(binary)
    addrs = set()
    for name in os.listdir(tmp):
        if not name.startswith("callgrind.out"):
            continue
        ours = False
        with open(os.path.join(tmp, name), errors="replace") as f:
            for line in f:
                if line.startswith("ob="):
                    ours = os.path.realpath(line[3:].strip()) == real
                # Cost lines (--dump-instr=yes --compress-pos=no) start with the address.
                elif ours and line.startswith("0x"):
                    addrs.add(int(line.split()[0], 16))
    shutil.rmtree(tmp, ignore_errors=True)
    return addrs


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    names, total, funcs = [], 0, 0
    for binary, map_path in zip(args[::2], args[1::2]):
        secs = sections(map_path)
        starts = [s for s, _, _ in secs]
        hit = set()
        for a in executed_addresses(binary):
            i = bisect.bisect_right(starts, a) - 1
            if i >= 0 and a < secs[i][1]:
                hit.add(i)
        chosen = [secs[i] for i in sorted(hit)]
        size = sum(e - s for s, e, _ in chosen)
        print(f"{binary}: {len(chosen)} functions, {size / 1048576:.2f} MiB of "
              f"{sum(e - s for s, e, _ in secs) / 1048576:.2f} MiB of code")
        names += [sym for _, _, sym in chosen]
    seen = set()
    names = [n for n in names if not (n in seen or seen.add(n))]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.writelines(n + "\n" for n in names)
    print(f"{len(names)} names -> {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
