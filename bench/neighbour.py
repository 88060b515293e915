#!/usr/bin/env python3
"""Drivers of bench/neighbour.sh (standard library only, loopback only).

victims: every round, commits a new env to each victim account's workspace,
    posts one GitLab push hook per account at once, and takes each
    account's push -> running latency from dockerd's start event of
    `<account>--a`. Writes one latency (ms) per line.
attacker: one student doing everything at once until told to stop: a push
    every second of a new git tree bomb (10^levels paths) as a build
    context, `tabs` log streams of a container printing without newlines
    (a refused tab retries every second, as a browser's EventSource does),
    and `terminals` terminals, each running a loop that prints.
sample: serve's peak RSS (VmHWM) and CPU seconds, for the summary.
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SECRET = os.environ.get("BERTH_WEBHOOK_SECRET", "bench-secret")


def git(work, *args, stdin=""):
    out = subprocess.run(["git", "-C", work, *args], input=stdin.encode(),
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def push_hook(listen, account, sha, uuid):
    body = json.dumps({
        "object_kind": "push", "after": sha, "ref": "refs/heads/main",
        "checkout_sha": sha, "user_id": 1, "user_username": account,
        "project_id": 1,
        "project": {"path_with_namespace": f"{account}/workspace",
                    "default_branch": "main"},
    }).encode()
    req = urllib.request.Request(
        f"http://{listen}/hooks/gitlab", data=body, method="POST",
        headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook",
                 "X-Gitlab-Event-UUID": uuid})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def victims(a):
    accounts = [f"bench{i:04d}" for i in range(a.accounts)]
    events = subprocess.Popen(
        ["docker", "events", "--filter", "type=container", "--filter",
         "event=start", "--format", "{{.Actor.Attributes.name}} {{.TimeNano}}"],
        stdout=subprocess.PIPE, text=True)
    started = {}
    lock = threading.Lock()

    def read_events():
        for line in events.stdout:
            name, _, nanos = line.strip().rpartition(" ")
            with lock:
                started.setdefault(name, []).append(int(nanos))

    threading.Thread(target=read_events, daemon=True).start()
    latencies = []
    for rnd in range(a.rounds):
        shas = {}
        for acc in accounts:
            work = os.path.join(a.dir, "work", acc)
            with open(os.path.join(work, "workspace.yaml"), "w") as f:
                f.write(workspace(a.image, f"{a.tag}-{rnd}"))
            git(work, "add", "-A")
            git(work, "-c", "user.name=B", "-c", f"user.email={acc}@berth.test",
                "commit", "-qm", f"round {rnd}")
            git(work, "push", "-q", os.path.join(a.dir, "repos", acc, "workspace.git"),
                "HEAD:main")
            shas[acc] = git(work, "rev-parse", "HEAD")
        posted = {}
        for acc in accounts:
            posted[acc] = time.time_ns()
            push_hook(a.listen, acc, shas[acc], f"{a.tag}-{rnd}-{acc}")
        deadline = time.time() + a.timeout
        pending = set(accounts)
        while pending:
            if time.time() > deadline:
                sys.exit(f"round {rnd}: {len(pending)} account(s) not running after "
                         f"{a.timeout} s, e.g. {sorted(pending)[:3]}")
            with lock:
                for acc in list(pending):
                    after = [t for t in started.get(f"{acc}--a", []) if t >= posted[acc]]
                    if after:
                        latencies.append((min(after) - posted[acc]) / 1e6)
                        pending.discard(acc)
            time.sleep(0.01)
        print(f"round {rnd}: {len(accounts)} pushes running", file=sys.stderr)
    events.terminate()
    with open(a.out, "w") as f:
        f.writelines(f"{ms:.1f}\n" for ms in latencies)


def workspace(image, n):
    lines = ["version: 1", "containers:"]
    lines.append(f'  - {{ name: a, image: {image}, env: {{ N: "{n}" }}, ports: [8080], '
                 "resources: { cpus: 0.1, memory: 64Mi } }")
    for c in ("b", "c"):
        lines.append(f"  - {{ name: {c}, image: {image}, ports: [8080], "
                     "resources: { cpus: 0.1, memory: 64Mi } }")
    return "\n".join(lines) + "\n"


# --- the attacker -----------------------------------------------------------

def login(listen, user, password):
    body = f"username={user}&password={password}".encode()
    s = socket.create_connection(tuple(listen.split(":")))
    s.sendall(b"POST /login HTTP/1.0\r\nHost: " + listen.encode() +
              b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
              str(len(body)).encode() + b"\r\n\r\n" + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.lower().startswith("set-cookie: berth_session="):
            return line.split("=", 1)[1].split(";")[0]
    sys.exit("attacker: login failed")


def open_head(listen, head):
    host, port = listen.split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(head.encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(1)
        if not chunk:
            break
        got += chunk
    parts = got.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), s


def follow_logs(a, cookie, stop, stats):
    """One browser tab on the log page: reads everything, reconnects."""
    while not stop.is_set():
        try:
            code, s = open_head(a.listen, f"GET /my/containers/{a.container}/logs/stream HTTP/1.1\r\n"
                                f"Host: {a.listen}\r\nCookie: berth_session={cookie}\r\n\r\n")
        except OSError:
            stop.wait(1)
            continue
        count(stats, f"streams_{code}")
        if code != 200:
            s.close()
            stop.wait(1)
            continue
        drain(s, stop)


def count(stats, key):
    with stats["lock"]:
        stats[key] = stats.get(key, 0) + 1


def drain(s, stop):
    """Reads and drops whatever comes until stopped or closed."""
    s.settimeout(1)
    while not stop.is_set():
        try:
            if not s.recv(65536):
                break
        except socket.timeout:
            continue
        except OSError:
            break
    s.close()


def ws_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def terminal(a, cookie, stop, stats):
    """One terminal tab running a printing loop; reads what it prints."""
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        code, s = open_head(a.listen, f"GET /my/containers/{a.container}/terminal/ws HTTP/1.1\r\n"
                            f"Host: {a.listen}\r\nOrigin: http://{a.listen}\r\n"
                            f"Cookie: berth_session={cookie}\r\nUpgrade: websocket\r\n"
                            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n")
    except OSError:
        return
    count(stats, f"terminals_{code}")
    if code != 101:
        s.close()
        return
    s.sendall(ws_frame("while true; do echo neighbour-noise-$RANDOM; done\n"))
    drain(s, stop)


def bomb_pusher(a, stop, stats):
    """A push every second; each a new tree bomb, so no answer is cached."""
    work = a.work
    empty = git(work, "hash-object", "-w", "--stdin")
    tree = git(work, "mktree", stdin="".join(f"100644 blob {empty}\tn{i}\n" for i in range(10)))
    for _ in range(1, a.levels):
        tree = git(work, "mktree", stdin="".join(f"040000 tree {tree}\tn{i}\n" for i in range(10)))
    dockerfile = git(work, "hash-object", "-w", "--stdin",
                     stdin=f"FROM {a.registry}/{a.account}/base:1\n")
    yaml = git(work, "hash-object", "-w", "--stdin",
               stdin=(f"version: 1\nimages:\n  build:\n    - {{ name: tools, context: bomb }}\n"
                      f"containers:\n  - {{ name: noisy, image: {a.image}, "
                      f"command: [\"/bin/busybox\", \"sh\", \"-c\", \"{NOISY}\"], "
                      "resources: { cpus: 0.2, memory: 64Mi } }\n"))
    parent = git(work, "rev-parse", "HEAD")
    n = 0
    while not stop.is_set():
        n += 1
        salt = git(work, "hash-object", "-w", "--stdin", stdin=str(n))
        ctx = git(work, "mktree", stdin=f"100644 blob {dockerfile}\tDockerfile\n"
                  f"040000 tree {tree}\tb\n100644 blob {salt}\tsalt\n")
        root = git(work, "mktree", stdin=f"100644 blob {yaml}\tworkspace.yaml\n040000 tree {ctx}\tbomb\n")
        parent = git(work, "-c", "user.name=M", "-c", f"user.email={a.account}@berth.test",
                     "commit-tree", root, "-p", parent, "-m", f"bomb {n}")
        git(work, "push", "-q", "-f", a.repo, f"{parent}:refs/heads/main")
        try:
            push_hook(a.listen, a.account, parent, f"bomb-{n}-{time.time_ns()}")
            count(stats, "pushes")
        except OSError:
            pass
        stop.wait(1)


NOISY = ("while true; do /bin/busybox head -c 20000 /dev/zero | /bin/busybox tr '\\\\0' x; "
         "/bin/busybox sleep 0.02; done")


def attacker(a):
    cookie = login(a.listen, a.account, a.password)
    stop = threading.Event()
    stats = {"lock": threading.Lock()}
    threads = [threading.Thread(target=follow_logs, args=(a, cookie, stop, stats), daemon=True)
               for _ in range(a.tabs)]
    threads += [threading.Thread(target=terminal, args=(a, cookie, stop, stats), daemon=True)
                for _ in range(a.terminals)]
    threads.append(threading.Thread(target=bomb_pusher, args=(a, stop, stats), daemon=True))
    for t in threads:
        t.start()
    # Until the harness says stop (the file appears) or a deadline passes.
    deadline = time.time() + a.duration
    while not os.path.exists(a.stop_file) and time.time() < deadline:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    stats.pop("lock")
    with open(a.out, "w") as f:
        json.dump(stats, f)


def sample(a):
    """Samples serve's VmHWM and CPU until the stop file appears."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        with open(f"/proc/{a.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    t0, c0 = time.time(), cpu()
    peak_cpu, last_t, last_c = 0.0, t0, c0
    while not os.path.exists(a.stop_file):
        time.sleep(1)
        t, c = time.time(), cpu()
        peak_cpu = max(peak_cpu, (c - last_c) / (t - last_t))
        last_t, last_c = t, c
    with open(f"/proc/{a.pid}/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    with open(a.out, "w") as f:
        json.dump({"peak_rss_kib": hwm, "cpu_s": last_c - c0, "wall_s": last_t - t0,
                   "peak_cores": peak_cpu}, f)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("victims")
    v.add_argument("--listen", required=True)
    v.add_argument("--dir", required=True)
    v.add_argument("--accounts", type=int, default=50)
    v.add_argument("--rounds", type=int, default=3)
    v.add_argument("--image", required=True)
    v.add_argument("--tag", required=True)
    v.add_argument("--timeout", type=int, default=180)
    v.add_argument("--out", required=True)
    t = sub.add_parser("attacker")
    for name in ("listen", "account", "password", "container", "work", "repo", "image",
                 "registry", "stop-file", "out"):
        t.add_argument("--" + name, required=True)
    t.add_argument("--levels", type=int, default=7)
    t.add_argument("--tabs", type=int, default=20)
    t.add_argument("--terminals", type=int, default=20)
    t.add_argument("--duration", type=int, default=900)
    s = sub.add_parser("sample")
    s.add_argument("--pid", required=True)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--out", required=True)
    a = p.parse_args()
    {"victims": victims, "attacker": attacker, "sample": sample}[a.cmd](a)


if __name__ == "__main__":
    main()
