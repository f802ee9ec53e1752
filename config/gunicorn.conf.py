"""gunicorn with its stock gthread workers; the figures are bench/submit_bench.py's.

A long-poll parks its thread on an event (with no database connection), so
the thread budget is sized for waiting agents: WEB_THREADS a worker (256),
of which long-polls may hold all but a reserve kept for everything else.
Of the threads with work, WEB_ACTIVE_REQUESTS (2) run at once, in arrival
order. The master loads the application and the risk model once, and the
workers share those pages.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", 256))
# Of the threads, how many run requests at once (reviewqueue/core/admission.py).
active_requests = int(os.environ.get("WEB_ACTIVE_REQUESTS", 2))
# Threads long-polls may never take, so a fresh submission, a kill switch or
# a reviewer's page always finds one (reviewqueue/actions/wakeups.py).
reserved_threads = min(32, threads // 2)
# Each worker listens on its own socket (SO_REUSEPORT) and the kernel deals
# new connections out among them. Racing for one shared socket, the worker
# that woke first took most of them: 16 connections opened at once split
# 14/2 or 16/0 as often as 8/8, and a kept-alive connection stays where it
# landed, so the busier worker set the p99.
reuse_port = True
preload_app = True
timeout = 90  # above the longest long-poll (60 s)
graceful_timeout = 65
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None
# No gunicornc control socket: nothing uses it, and its default home (~/.gunicorn)
# often doesn't exist, which logged an error at every start.
control_socket_disable = True
# Whether a request came over HTTPS is Django's call alone (SECURE_PROXY_SSL_HEADER,
# set by REVIEWQUEUE_TLS_PROXY_HEADER): gunicorn would otherwise believe an
# X-Forwarded-Proto header from any client on this host.
secure_scheme_headers: dict[str, str] = {}


def when_ready(server):
    """In the master, before it forks the workers: load the risk model, hand
    back the database connection (and close the pool, whose threads a fork
    would not carry over), then freeze what start-up made. The workers share
    those pages; frozen objects are never rescanned by the garbage collector,
    whose full collections otherwise paused a worker's requests for 100 ms
    and more (and would write to, so unshare, every page they scan)."""
    import gc

    from django.db import connections

    import riskrouter

    try:
        riskrouter.current_router()
    except Exception:  # no database yet: the first request loads the model instead
        server.log.exception("could not load the risk model at start-up")
    for connection in connections.all(initialized_only=True):
        connection.close()
        if connection.vendor == "postgresql":
            connection.close_pool()
    gc.freeze()


def post_worker_init(worker):
    from reviewqueue.actions import wakeups
    from reviewqueue.core import admission

    admission.configure(active_requests)
    wakeups.configure(max_waiting=threads - reserved_threads)
    worker.log.info(
        "Worker ready (pid %s): %s threads, long-polls may hold %s, %s request(s) run at a time",
        worker.pid,
        threads,
        threads - reserved_threads,
        active_requests,
    )
