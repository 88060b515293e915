#!/usr/bin/env python3
"""Recreate benchmark (issue 14), driven by bench/recreate.sh.

1. Where a recreate's time goes on this dockerd: docker create, rm -f of a
   running container, rename, start of the test image, 10 times each
   (medians, through the docker CLI, so each includes the CLI's start).
2. Downtime: a poller GETs the container's host port as fast as it can;
   the window is the last answer of the old container to the first answer
   of the new one. For Berth, a push (new env) reconciled by `serve
   --watch`; push -> running is from `git push` to that first answer.
   By hand: `docker rm -f` + `docker run` of the same container.
Rounds alternate; medians and p99 are printed.
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

R, SITE, WORK, IMAGE, ROUNDS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# Seconds between the poller's tries (0: as fast as it can).
INTERVAL = float(os.environ.get("POLL_INTERVAL", "0.01"))


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout.strip()


def ms(t):
    return round(t * 1000, 1)


class Poller:
    """GETs 127.0.0.1:port/ in a loop; keeps (time, ok) of every try."""

    def __init__(self, port):
        self.port, self.log, self.stop = port, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            ok = False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.2)
                c.request("GET", "/")
                ok = c.getresponse().status == 200
                c.close()
            except (OSError, http.client.HTTPException):
                pass
            self.log.append((time.monotonic(), ok))
            if INTERVAL:
                time.sleep(INTERVAL)

    def window_after(self, t0):
        """(last answer before the gap, first answer after it) after t0."""
        last_ok, gap_start = None, None
        for t, ok in self.log:
            if t < t0:
                if ok:
                    last_ok = t
                continue
            if not ok and gap_start is None:
                gap_start = last_ok
            if ok and gap_start is not None:
                return gap_start, t
            if ok:
                last_ok = t
        return None

    def done(self):
        self.stop = True
        self.thread.join()


def breakdown():
    steps = {"create": [], "rm -f (running)": [], "rename": [], "start": []}
    for i in range(10):
        name = f"berth-bench-breakdown-{os.getpid()}"
        t = time.monotonic(); sh("docker", "create", "--name", name, IMAGE); steps["create"].append(time.monotonic() - t)
        t = time.monotonic(); sh("docker", "rename", name, name + "-x"); steps["rename"].append(time.monotonic() - t)
        t = time.monotonic(); sh("docker", "start", name + "-x"); steps["start"].append(time.monotonic() - t)
        t = time.monotonic(); sh("docker", "rm", "-f", name + "-x"); steps["rm -f (running)"].append(time.monotonic() - t)
    return {k: ms(statistics.median(v)) for k, v in steps.items()}


def port_of(name):
    fmt = '{{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}'
    return int(sh("docker", "inspect", "-f", fmt, name))


def wait_for(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    raise SystemExit("timed out")


def berth_round(i, poller):
    with open(os.path.join(WORK, "workspace.yaml"), "w") as f:
        f.write(
            f'version: 1\ncontainers:\n  - {{ name: web, image: "{IMAGE}", ports: [8080], env: {{ ROUND: "{i}" }} }}\n'
        )
    sh("git", "-C", WORK, "-c", "user.name=Alice", "-c", "user.email=alice@berth.test", "commit", "-qam", f"round {i}")
    t0 = time.monotonic()
    sh("git", "-C", WORK, "push", "-q", "origin", "HEAD:main")
    wait_for(lambda: poller.window_after(t0) is not None)
    w = poller.window_after(t0)
    return ms(w[1] - w[0]), ms(w[1] - t0)


def hand_round(i, port, poller):
    t0 = time.monotonic()
    sh("docker", "rm", "-f", "berth-bench-hand")
    sh("docker", "run", "-d", "--name", "berth-bench-hand", "-p", f"127.0.0.1:{port}:8080", "-e", f"ROUND={i}", IMAGE)
    wait_for(lambda: poller.window_after(t0) is not None)
    w = poller.window_after(t0)
    return ms(w[1] - w[0])


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    print("breakdown (ms, docker CLI, medians of 10):", json.dumps(breakdown()))
    berth_port = port_of("alice--web")
    hand_port = berth_port + 500
    sh("docker", "run", "-d", "--name", "berth-bench-hand", "-p", f"127.0.0.1:{hand_port}:8080", IMAGE)
    wait_for(lambda: sh("curl", "-sf", f"http://127.0.0.1:{hand_port}/", check=False) != "")
    bp, hp = Poller(berth_port), Poller(hand_port)
    downtime, push_running, hand = [], [], []
    for i in range(1, ROUNDS + 1):
        d, p = berth_round(i, bp)
        downtime.append(d); push_running.append(p)
        hand.append(hand_round(i, hand_port, hp))
    bp.done(); hp.done()
    for label, p in (("berth", bp), ("hand", hp)):
        oks = sum(1 for _, ok in p.log if ok)
        print(f"poller {label}: {len(p.log)} tries, {oks} answered")
    sh("docker", "rm", "-f", "berth-bench-hand")
    print(f"rounds: {ROUNDS}; Berth downtime ms: {downtime}")
    print(f"by-hand downtime ms: {hand}")
    print(f"push -> running ms: {push_running}")
    print(
        "RESULT berth_downtime_p50={} p99={} hand_downtime_p50={} p99={} ratio={:.2f} push_running_p50={} p99={}".format(
            statistics.median(downtime), pct(downtime, 99), statistics.median(hand), pct(hand, 99),
            statistics.median(downtime) / statistics.median(hand), statistics.median(push_running), pct(push_running, 99),
        )
    )


main()
