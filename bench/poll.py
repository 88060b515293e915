#!/usr/bin/env python3
"""A stand-in GitLab for bench/poll.sh: the REST endpoints polling and
discovery use, and git's smart HTTP protocol through the real
`git http-backend` (CGI), as GitLab serves `<url>/<path>.git`.

Usage: poll.py PORT REPO_ROOT COUNT SHA TOKEN
Accounts are u0000…; project ids 1…COUNT; every push event says the
account itself pushed SHA to main. GET /stats returns request counts.
"""
import base64
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, ROOT, COUNT, SHA, TOKEN = (
    int(sys.argv[1]),
    sys.argv[2],
    int(sys.argv[3]),
    sys.argv[4],
    sys.argv[5],
)
AUTH = "Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
STATS = {}
LOCK = threading.Lock()


def account(i):
    return f"u{i:04d}"


def count(kind):
    with LOCK:
        STATS[kind] = STATS.get(kind, 0) + 1


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def git(self):
        if self.headers.get("Authorization") != AUTH:
            count("git-unauthorized")
            return self.reply(401, headers=[("WWW-Authenticate", 'Basic realm="GitLab"')])
        count("git")
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True
        ).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        if not rest and b"\n\n" in out:
            head, _, rest = out.partition(b"\n\n")
        status, ctype, extra = 200, "application/octet-stream", []
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "status":
                status = int(value.split()[0])
            elif name == "content-type":
                ctype = value
            elif name:
                extra.append((name, value))
        self.reply(status, rest, ctype, extra)

    def api(self):
        path, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if path == "/stats":
            with LOCK:
                return self.reply(200, json.dumps(STATS).encode())
        if self.headers.get("PRIVATE-TOKEN") != TOKEN:
            return self.reply(401, b'{"message":"401 Unauthorized"}')
        if path == "/api/v4/groups/students/projects":
            count("projects")
            page = int(params.get("page", "1"))
            first = (page - 1) * 100
            projects = [
                {
                    "id": i + 1,
                    "path_with_namespace": f"{account(i)}/workspace",
                    "default_branch": "main",
                    "namespace": {"kind": "user", "path": account(i), "full_path": account(i)},
                }
                for i in range(first, min(first + 100, COUNT))
            ]
            nxt = [("X-Next-Page", str(page + 1))] if first + 100 < COUNT else []
            return self.reply(200, json.dumps(projects).encode(), headers=nxt)
        m = re.fullmatch(r"/api/v4/projects/(\d+)/repository/files/workspace\.yaml", path)
        if m:
            count("files")
            return self.reply(200, b"{}")
        m = re.fullmatch(r"/api/v4/projects/(\d+)/events", path)
        if m:
            count("events")
            i = int(m.group(1)) - 1
            event = {
                "action_name": "pushed to",
                "author_id": 10_000 + i,
                "author_username": account(i),
                "push_data": {"ref_type": "branch", "ref": "main", "commit_to": SHA},
            }
            return self.reply(200, json.dumps([event]).encode())
        self.reply(404, b'{"message":"404 Not Found"}')

    def do_GET(self):
        if ".git/" in self.path:
            return self.git()
        self.api()

    def do_POST(self):
        if ".git/" in self.path:
            return self.git()
        self.reply(404)

    def do_HEAD(self):
        self.api()


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
