"""Helpers for the client tests."""

import asyncio
from concurrent.futures import ThreadPoolExecutor


def run_async(coroutine):
    """asyncio.run in a thread of its own: the browser tests' Playwright (sync
    API) keeps an event loop running in the main thread for the whole session,
    and asyncio.run refuses to start beside it."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
