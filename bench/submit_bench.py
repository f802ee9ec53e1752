"""The web server as a user runs it, against the issue's targets.

Starts gunicorn exactly as the run command does, with only what the README
tells a user to set for PostgreSQL and Redis (DATABASE_URL, REDIS_URL,
CELERY_BROKER_URL; every other variable at its default, whatever this shell
holds), and a trained risk model. Then measures, printing each beside its
target:

1. throughput and p50/p99 of POST /api/v1/actions from 16 kept-alive
   connections (wrk), without and with an Idempotency-Key (a new one per
   request), beside the floor: a bare Django view on the same server doing
   one INSERT (bench/floor.py). The three alternate for --rounds runs of
   --seconds and the medians are compared, because a VM's speed drifts by
   tens of percent within minutes. Also the CPU per request of the web server
   and of PostgreSQL, and how the 16 connections were split between workers;
2. one agent's sequential calls (one connection, one call at a time): p50
   and p99 of a submission beside the floor's;
3. 300 different agents each parked in GET /actions/{id}/wait?timeout=60
   on a blocking action, while fresh connections (no keep-alive) submit one
   at a time: p50/p99 of those submissions, and whether every wait stayed
   parked until its agent cancelled the action;
4. the server's memory: PSS (and RSS) of the master and its workers summed,
   at start, after the load and with the 300 waits parked.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/submit_bench.py [--seconds 10] [--rounds 3] [--set NAME=VALUE ...]

`--set` starts the server with a setting changed (e.g. WEB_THREADS=64, to
see what a smaller thread budget does); the run then says it is not the
defaults. Needs wrk (apt-get install wrk). The database named in
DATABASE_URL is dropped and recreated.
"""

import argparse
import collections
import http.client
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BODY = {
    "action_type": "crm.contacts.lookup",
    "tool": "hubspot.contacts.search",
    "payload": {"query": "jane@acme.example", "limit": 10, "fields": ["name", "email", "phone"]},
    "summary": "Look up the customer's contact record",
    "rationale": "The customer asked about their account; I need their record.",
    "conversation_id": "",
    "callback_url": "https://agent.example/hooks/reviewqueue",
}
REFUND = {
    "action_type": "payments.refund",
    "tool": "stripe.refunds.create",
    "payload": {"amount": 4800},
    "summary": "Refund $4,800 to customer 8812",
}
TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_floor (
    id bigserial PRIMARY KEY, action_type text, tool text, summary text, rationale text,
    conversation_id text, callback_url text, status text, tier text, payload jsonb,
    created_at timestamptz DEFAULT now()
)
"""
LUA = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
"""
# A new Idempotency-Key per request: "<run>-<thread>-<count>".
LUA_KEYED = (
    LUA
    + """
local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end
local count = 0
function request()
   count = count + 1
   wrk.headers["Idempotency-Key"] = "%(run)s-" .. tid .. "-" .. count
   return wrk.format()
end
"""
)
# What a user sets for PostgreSQL and Redis (README, "Configuration"); the
# server sees these and nothing else from this shell.
USER_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
WAITERS = 300


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, cwd=ROOT, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, key, seconds, *, connections=16, keyed=False, server=None):
    """wrk's figures for POSTing BODY, with the CPU per request of the server and PostgreSQL."""
    script = LUA_KEYED if keyed else LUA
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script % {"body": json.dumps(BODY), "key": key, "run": secrets.token_hex(6)})
    web_before, db_before = _cpu(server.pid) if server else 0.0, _cpu_postgres()
    split = {}
    sampler = threading.Thread(target=lambda: split.update(_split_later(server, 2.0)), daemon=True)
    if server:
        sampler.start()
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua.name, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(lua.name)
    web, db = (_cpu(server.pid) if server else 0.0) - web_before, _cpu_postgres() - db_before
    requests = int(re.search(r"(\d+) requests in", out)[1])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    pct = {m[0]: _ms(m[1], m[2]) for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sampler.join(1) if server else None
    return {
        "rps": rps,
        "p50": pct["50"],
        "p99": pct["99"],
        "errors": int(non2xx[1]) if non2xx else 0,
        "web_ms": 1000 * web / requests,
        "db_ms": 1000 * db / requests,
        "split": "/".join(str(n) for n in sorted(split.values(), reverse=True)),
    }


def _split_later(server, delay: float) -> dict[int, int]:
    time.sleep(delay)
    return connections_per_worker(server)


def _cpu(pid) -> float:
    """CPU seconds used so far by a process and its children (Linux /proc)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            pending += _children(current)
        except OSError:  # it ended meanwhile
            continue
    return total


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _cpu_postgres() -> float:
    """CPU seconds of every running postgres process (the pool keeps the backends alive)."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == "postgres"]
    return sum(_cpu(pid) for pid in pids if not _has_postgres_parent(pid))


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def _has_postgres_parent(pid: int) -> bool:
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return False
    return _comm(Path(f"/proc/{parent}")) == "postgres"


def _ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def _median(runs: list[dict]) -> dict:
    """Each figure's median over the runs (the middle run for an odd count)."""
    return {
        name: statistics.median(run[name] for run in runs) if name != "split" else runs[0][name] for name in runs[0]
    }


def connections_per_worker(server) -> dict[int, int]:
    """Established TCP connections held by each worker of the server (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == server.port and fields[3] == "01":
                    inodes.add(fields[9])
    counts = {}
    for pid in _children(server.pid):
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            held += target.startswith("socket:[") and target[8:-1] in inodes
        counts[pid] = held
    return counts


def splits(server, trials: int = 20) -> str:
    """How 16 connections opened at once fall between the workers, over `trials` tries."""
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(trials):
        sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(16)]
        for sock in sockets:
            sock.sendall(b"GET /api/v1/kill-switch HTTP/1.1\r\nHost: bench\r\n\r\n")
        time.sleep(0.5)  # all accepted and answered; kept alive
        seen["/".join(str(n) for n in sorted(connections_per_worker(server).values(), reverse=True))] += 1
        for sock in sockets:
            sock.close()
        time.sleep(0.3)
    return ", ".join(f"{split} {count} times" for split, count in sorted(seen.items()))


def memory(server) -> dict:
    """PSS and RSS in MB, summed over the master and its workers (/proc/PID/smaps_rollup).

    PSS splits a page shared by n processes n ways, so it adds up to what
    the server really holds; RSS counts a shared page once per process."""
    pss = rss = 0
    for pid in [server.pid, *_children(server.pid)]:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "Pss":
                pss += int(value.split()[0])
            elif name == "Rss":
                rss += int(value.split()[0])
    return {"pss": pss / 1024, "rss": rss / 1024}


def sequential(host, port, path, key, count) -> dict:
    """p50/p99 in ms of `count` POSTs one after another on one kept-alive connection."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    body = json.dumps(BODY)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    latencies, failed = [], 0
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        failed += response.status >= 300
    connection.close()
    return _percentiles(latencies, failed)


def fresh_connection_submissions(host, port, key, count) -> dict:
    """p50/p99 in ms of `count` submissions, each on a new connection (connect to answer)."""
    body = json.dumps(BODY)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}", "Connection": "close"}
    latencies, failed = [], 0
    for _ in range(count):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request("POST", "/api/v1/actions", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            failed += response.status >= 300
        except OSError:
            failed += 1
        finally:
            connection.close()
        latencies.append((time.perf_counter() - started) * 1000)
    return _percentiles(latencies, failed)


def _percentiles(latencies: list[float], failed: int) -> dict:
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[max(int(len(latencies) * 0.99) - 1, 0)],
        "failed": failed,
    }


def _call(base, method, path, key, body=None, timeout=30):
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.status, json.load(answer)


class Waiters:
    """One long-poll per agent, each on its own connection, on a blocking action."""

    def __init__(self, base: str, keys: list[str]):
        self.base, self.keys = base, keys
        self.ids = [_call(base, "POST", "/api/v1/actions", key, REFUND)[1]["id"] for key in keys]
        self.sent = threading.Semaphore(0)
        self.answers: list[tuple[int, str]] = []
        self.threads = [
            threading.Thread(target=self._wait, args=(k, i), daemon=True) for k, i in zip(keys, self.ids, strict=True)
        ]

    def _wait(self, key, action_id):
        connection = http.client.HTTPConnection("127.0.0.1", int(self.base.rsplit(":", 1)[1]), timeout=90)
        try:
            try:
                connection.request(
                    "GET", f"/api/v1/actions/{action_id}/wait?timeout=60", headers={"Authorization": f"Bearer {key}"}
                )
            finally:
                self.sent.release()
            response = connection.getresponse()
            answer = (response.status, json.loads(response.read() or b"{}").get("status", ""))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            answer = (0, repr(exc))
        finally:
            connection.close()
        self.answers.append(answer)

    def park(self):
        for thread in self.threads:
            thread.start()
        for _ in self.threads:
            self.sent.acquire(timeout=60)
        time.sleep(2)  # the last requests reach their threads and park

    def release(self) -> None:
        """Each agent cancels its action, which wakes its wait."""
        for key, action_id in zip(self.keys, self.ids, strict=True):
            _call(self.base, "POST", f"/api/v1/actions/{action_id}/cancel", key)
        for thread in self.threads:
            thread.join(30)


class Server:
    """gunicorn as the run command starts it; `changes` names gunicorn settings
    (lower case, e.g. reuse_port=False) or environment variables to change."""

    def __init__(self, env: dict[str, str], changes: dict[str, str] | None = None):
        self.port = free_port()
        config = "config/gunicorn.conf.py"
        changes = changes or {}
        if server_settings := {k: v for k, v in changes.items() if k.islower()}:
            with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as changed:
                changed.write(f"exec(open({str(ROOT / config)!r}).read())\n")
                changed.writelines(f"{name} = {value}\n" for name, value in server_settings.items())
            config = changed.name
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "-c", config],
            cwd=ROOT,
            env={**env, **{k: v for k, v in changes.items() if not k.islower()}, "BIND": f"127.0.0.1:{self.port}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.process.pid
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):  # until it answers (401: no key); the OpenAPI document would cost a worker 13 MB
            try:
                urllib.request.urlopen(f"{self.base}/api/v1/kill-switch")
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def fresh_database() -> str:
    """DATABASE_URL (PostgreSQL), dropped and created anew; returns it."""
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/reviewqueue_bench")
    if not url.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    db = urlparse(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    sh("psql", admin, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    sh("psql", admin, "-qc", f"CREATE DATABASE {db}")
    return url


def user_environment(url: str, var: str, overrides: dict[str, str]) -> dict[str, str]:
    """The shell's PATH and locale, the user's settings and nothing else."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    env.update({name: os.environ[name] for name in USER_SETTINGS if name in os.environ})
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/6")
    env.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/5")
    return {
        **env,
        "DATABASE_URL": url,
        "REVIEWQUEUE_VAR_DIR": var,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        **overrides,
    }


def create_agents(env, count: int) -> tuple[str, list[str]]:
    """The throughput agent's key (rate limit out of the way) and `count` waiting agents' keys."""
    script = (
        "import json\n"
        "from reviewqueue.credentials.keys import agent_create\n"
        "keys = [agent_create(name='bench', scopes=['*'], actor='bench', rate_limit_per_minute=100_000_000)[1]]\n"
        f"keys += [agent_create(name=f'waiter-{{n}}', scopes=['*'], actor='bench')[1] for n in range({count})]\n"
        "print(json.dumps(keys))\n"
    )
    out = sh(PY, "manage.py", "shell", "-c", script, env=env, capture_output=True, text=True).stdout
    keys = json.loads(out.strip().splitlines()[-1])
    return keys[0], keys[1:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="start the server with this setting changed (not the defaults then; lower case:"
        " a gunicorn setting, upper case: a variable)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="also run a second server with this setting changed, in the same rounds"
        " (lower case: a gunicorn setting, e.g. reuse_port=False; upper case: a variable)",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    changed = dict(item.split("=", 1) for item in args.compare)
    url = fresh_database()
    env = user_environment(
        url, tempfile.mkdtemp(prefix="rq-bench-"), {k: v for k, v in overrides.items() if not k.islower()}
    )
    server_settings = {k: v for k, v in overrides.items() if k.islower()}
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    # Route with a trained model, as the run command does.
    sh(PY, "manage.py", "train_risk_model", "--if-missing", "--quiet", env=env, stdout=subprocess.DEVNULL)
    sh("psql", url, "-qc", TABLE_SQL)
    key, waiter_keys = create_agents(env, WAITERS)
    server = Server(env, server_settings)
    other = Server(env, {**server_settings, **changed}) if changed else None
    host, port, base = "127.0.0.1", server.port, server.base
    try:
        at_start = memory(server)
        wrk(f"{base}/bench/floor", key, 3)  # warm up every path
        wrk(f"{base}/api/v1/actions", key, 3)
        wrk(f"{base}/api/v1/actions", key, 3, keyed=True)
        if other:
            wrk(f"{other.base}/api/v1/actions", key, 3)
        # This VM's speed drifts by tens of percent within minutes: alternate
        # the three and compare medians, so all see the same machine.
        runs = {"floor": [], "ours": [], "keyed": [], "other": []}
        for _ in range(args.rounds):
            runs["floor"].append(wrk(f"{base}/bench/floor", key, args.seconds, server=server))
            runs["ours"].append(wrk(f"{base}/api/v1/actions", key, args.seconds, server=server))
            runs["keyed"].append(wrk(f"{base}/api/v1/actions", key, args.seconds, keyed=True, server=server))
            if other:
                runs["other"].append(wrk(f"{other.base}/api/v1/actions", key, args.seconds, server=other))
        floor, ours, keyed = (_median(runs[name]) for name in ("floor", "ours", "keyed"))
        # Each round's floor and ours ran side by side: their ratio is the figure, its median over the rounds.
        ratio, keyed_ratio = (
            statistics.median(r["rps"] / f["rps"] for r, f in zip(runs[name], runs["floor"], strict=True))
            for name in ("ours", "keyed")
        )
        split_ours = splits(server)
        if other:
            split_other = splits(other)
            other.stop()
            other = None
        seq_floor = sequential(host, port, "/bench/floor", key, 1000)
        seq_ours = sequential(host, port, "/api/v1/actions", key, 1000)
        after_load = memory(server)

        fresh_before = fresh_connection_submissions(host, port, key, 100)
        waiters = Waiters(base, waiter_keys)
        waiters.park()
        parked_before = WAITERS - len(waiters.answers)
        fresh = fresh_connection_submissions(host, port, key, 200)
        parked_after = WAITERS - len(waiters.answers)
        with_waiters = memory(server)
        waiter_split = "/".join(str(n) for n in sorted(connections_per_worker(server).values(), reverse=True))
        waiters.release()
        released = memory(server)
        cancelled = sum(answer == (200, "cancelled") for answer in waiters.answers)
        others = collections.Counter(answer for answer in waiters.answers if answer != (200, "cancelled"))
    finally:
        server.stop()
        if other:
            other.stop()

    print(
        f"reviewqueue web server, {args.rounds} alternating rounds of {args.seconds}s, PostgreSQL and Redis;"
        f" settings: {', '.join(f'{k}={v}' for k, v in overrides.items()) or 'the defaults'}"
    )
    print("16 kept-alive connections (wrk):")
    for number in range(args.rounds):
        f, o, k = (runs[name][number] for name in ("floor", "ours", "keyed"))
        print(
            f"  round {number + 1}: floor {f['rps']:.0f}/s, ours {o['rps']:.0f}/s (p99 {o['p99']:.1f} ms),"
            f" keyed {k['rps']:.0f}/s (p99 {k['p99']:.1f} ms); ratios {o['rps'] / f['rps']:.2f},"
            f" {k['rps'] / f['rps']:.2f}"
        )
        if changed:
            c = runs["other"][number]
            print(
                f"           with {', '.join(args.compare)}: {c['rps']:.0f}/s (p99 {c['p99']:.1f} ms),"
                f" ratio {c['rps'] / f['rps']:.2f}"
            )
    print(
        f"  medians{'':<27}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}  CPU ms/request: web  PostgreSQL"
        "  connections per worker"
    )
    rows = [("floor (parse + 1 INSERT)", floor), ("POST /api/v1/actions", ours), ("  … with an Idempotency-Key", keyed)]
    if changed:
        rows.append((f"  … {', '.join(args.compare)}"[:33], _median(runs["other"])))
    for name, r in rows:
        print(
            f"  {name:<33}{r['rps']:>8.0f}{r['p50']:>8.1f}{r['p99']:>8.1f}{r['errors']:>8}"
            f"{r['web_ms']:>22.2f}{r['db_ms']:>12.2f}  {r['split']:>10}"
        )
    print(f"16 connections opened at once, 20 times, fell between the workers: {split_ours}")
    if changed:
        print(f"  … with {', '.join(args.compare)}: {split_other}")
    print("one agent, one call at a time (1000 calls on a kept-alive connection):")
    print(
        f"  floor p50 {seq_floor['p50']:.2f} ms, p99 {seq_floor['p99']:.2f} ms;"
        f" POST /api/v1/actions p50 {seq_ours['p50']:.2f} ms, p99 {seq_ours['p99']:.2f} ms"
        f" ({seq_ours['p50'] - seq_floor['p50']:+.2f} ms over the floor at p50)"
    )
    print(
        f"{WAITERS} agents parked in wait?timeout=60 ({parked_before} parked when measuring began,"
        f" {parked_after} when it ended, {cancelled} answered 'cancelled' when their agents cancelled;"
        f" per worker {waiter_split}):"
    )
    if others:
        print(f"  other answers to the waits: {dict(others)}")
    print(
        f"  submissions on fresh connections, one at a time: before p50 {fresh_before['p50']:.1f} ms,"
        f" p99 {fresh_before['p99']:.1f} ms; during p50 {fresh['p50']:.1f} ms, p99 {fresh['p99']:.1f} ms;"
        f" failed {fresh_before['failed'] + fresh['failed']}"
    )
    print(
        f"memory of master + workers: PSS {at_start['pss']:.0f} MB at start, {after_load['pss']:.0f} MB after"
        f" the load, {with_waiters['pss']:.0f} MB with {WAITERS} waits parked, {released['pss']:.0f} MB once they"
        f" answered (RSS {at_start['rss']:.0f}, {after_load['rss']:.0f}, {with_waiters['rss']:.0f},"
        f" {released['rss']:.0f} MB)"
    )
    print(
        f"  a parked wait: {1024 * (with_waiters['pss'] - after_load['pss']) / WAITERS:.0f} KB,"
        f" {1024 * (released['pss'] - after_load['pss']) / WAITERS:.0f} KB once its thread has answered"
    )
    peak = max(at_start["pss"], after_load["pss"], with_waiters["pss"], released["pss"])
    print("targets:")
    for label, value, target, ok in (
        ("submissions / floor (median of the rounds' ratios)", f"{ratio:.2f}", "≥ 0.50", ratio >= 0.5),
        ("keyed submissions / floor", f"{keyed_ratio:.2f}", "≥ 0.50", keyed_ratio >= 0.5),
        ("submission p99", f"{ours['p99']:.1f} ms", "≤ 50 ms", ours["p99"] <= 50),
        ("keyed submission p99", f"{keyed['p99']:.1f} ms", "≤ 50 ms", keyed["p99"] <= 50),
        ("one agent's sequential call, p50", f"{seq_ours['p50']:.2f} ms", "≤ 2 ms", seq_ours["p50"] <= 2),
        (
            f"fresh connection's submission p99, {WAITERS} waits parked",
            f"{fresh['p99']:.1f} ms",
            "≤ 100 ms",
            fresh["p99"] <= 100 and parked_after == WAITERS,
        ),
        ("memory (PSS, peak)", f"{peak:.0f} MB", "≤ 300 MB", peak <= 300),
    ):
        print(f"  {label:<56}{value:>10}  target {target:<9}{'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
