"""gunicorn, gthread workers: a long-poll parks one thread on an Event (no
database connection), so 50 waiting agents leave the other threads free."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# gthread, taking new connections in turn with its siblings (config/workers.py).
worker_class = "config.workers.BalancedThreadWorker"
threads = int(os.environ.get("WEB_THREADS", 64))
# Of the threads, how many run requests at once (reviewqueue/admission.py).
active_requests = int(os.environ.get("WEB_ACTIVE_REQUESTS", 2))
timeout = 90  # above the longest long-poll (60 s)
graceful_timeout = 65
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None
# Whether a request came over HTTPS is Django's call alone (SECURE_PROXY_SSL_HEADER,
# set by REVIEWQUEUE_TLS_PROXY_HEADER): gunicorn would otherwise believe an
# X-Forwarded-Proto header from any client on this host.
secure_scheme_headers = {}


def post_worker_init(worker):
    """Load the risk model, then freeze everything start-up made: the garbage
    collector stops rescanning those objects, whose full collections otherwise
    paused every request of the worker for 100 ms or more (the p99 of
    bench/submit_bench.py)."""
    import gc

    import riskrouter
    from reviewqueue.core import admission

    try:
        riskrouter.current_router()
    except Exception:  # no database yet: the first request loads the model instead
        worker.log.exception("could not load the risk model at start-up")
    gc.freeze()
    admission.configure(active_requests)
    worker.log.info("Worker ready (pid %s): %s request(s) at a time", worker.pid, active_requests)
