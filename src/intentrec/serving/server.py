"""Running the app under uvicorn: ``intentrec serve RUN --host --port [--token]``.

The socket is bound before the run is loaded, so a port that is taken fails at once with a clear message,
not after a minute of loading a large model. Every request runs on one core (torch and faiss are set to one
thread): under load, requests in parallel use the cores better than one request spread over all of them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import torch
import uvicorn

from intentrec.errors import ConfigError
from intentrec.run import RunFiles
from intentrec.serving.app import create_app
from intentrec.serving.service import ServeConfig, Service

log = logging.getLogger("intentrec")


def serve(
    run: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    config: ServeConfig | None = None,
    access_log: bool = False,
) -> bool:
    """Serve ``run`` over HTTP in ``config.workers`` processes until interrupted (Ctrl-C stops cleanly).

    Returns False when a worker process ended without being asked to (it was replaced, or the others
    served on).
    """
    if token is not None and not token.strip():
        raise ConfigError("--token is empty: give a secret, or leave the option out to serve without one.")
    config = config or ServeConfig()
    workers = config.workers
    if workers > 1 and not hasattr(os, "fork"):
        raise ConfigError(f"--workers {workers}: more than one needs a system that can fork (Linux, macOS).")
    RunFiles(run).require()
    cores = os.cpu_count() or 1
    if workers > cores:
        log.warning(
            "%d workers on %d cores: more than one a core adds no throughput, only memory.", workers, cores
        )
    listeners = bind(host, port, copies=workers)
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    service = Service.load(run, config)
    # Every full garbage collection would walk the millions of loaded objects (IDs, titles, category
    # lists): 290 ms in the middle of requests with a million items. They live as long as the server, so
    # they are moved out of the collector's sight (and forked workers stop copying the pages it writes).
    gc.collect()
    gc.freeze()
    bound_host, bound_port = listeners[0].getsockname()[:2]
    log.info(
        "serving %s (%d items, %s index) on http://%s:%d in %d process(es), documentation at /docs%s",
        Path(run).name,
        service.catalogue.n_items,
        service.index.kind,
        bound_host,
        bound_port,
        workers,
        ", bearer token required" if token else "",
    )
    if workers == 1:
        _run(service, token, listeners[0], access_log)
        return True
    # Loaded once, then forked: the workers share the model's and the index's memory, and each has its
    # own interpreter, so one's Python work (HTTP, JSON) never waits for another's GIL. This process only
    # supervises: it passes a stop on to the workers, waits for them, and replaces one that dies. It keeps
    # the sockets open, so a replacement takes over its predecessor's socket and the connections queued on it.

    def start_worker(slot: int) -> int:
        listener = listeners[slot % len(listeners)]
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                # the supervisor's signal handlers are not the worker's (uvicorn installs its own)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                for other in listeners:  # only its own
                    if other is not listener:
                        other.close()
                _copy_catalogue_objects(service)
                _run(service, token, listener, access_log)
            except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has shut down
                pass
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                status = 1
            finally:
                os._exit(status)
        return pid

    def close_socket(slot: int) -> None:
        if len(listeners) > 1:  # its own socket, which nobody accepts on any more; one shared socket stays
            listeners[slot].close()

    try:
        return _supervise(workers, start_worker, close_socket, config.restart_after_seconds)
    finally:
        for listener in listeners:
            listener.close()


def _supervise(
    workers: int,
    start_worker: Callable[[int], int],
    close_socket: Callable[[int], None],
    restart_after_seconds: float,
) -> bool:
    """Start ``workers`` workers, pass a stop (Ctrl-C, SIGTERM) on to them and wait for them all; False if
    one ended unasked.

    A worker that dies while the others serve (killed, out of memory) is reported when it dies and
    replaced by a new one on the same socket, unless it died within ``restart_after_seconds`` of its
    start: then it would most likely die again, so its socket is closed and the others serve on.
    """
    running: dict[int, tuple[int, float]] = {}  # pid -> (slot, start time)
    for slot in range(workers):
        running[start_worker(slot)] = (slot, time.monotonic())
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        # SIGTERM whatever came: a worker that already has Ctrl-C from the terminal takes a second
        # SIGINT as "stop now, do not finish the requests in flight"
        for pid in list(running):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    clean = True
    while running:
        pid, status = os.wait()
        slot, started = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        # a worker stopped while still starting (before uvicorn took the signals) ends by SIGTERM itself;
        # one that ends otherwise was not asked to, even with status 0 (uvicorn's failed startup, say)
        if stopping:
            continue
        clean = False
        died = f"by signal {-code}" if code < 0 else f"with exit status {code}"
        lived = time.monotonic() - started
        if lived < restart_after_seconds:
            close_socket(slot)
            log.error(
                "worker %d stopped %s %.1f s after it started, so it is not replaced; %d still serving",
                pid,
                died,
                lived,
                len(running),
            )
            continue
        replacement = start_worker(slot)
        running[replacement] = (slot, time.monotonic())
        if stopping:  # the stop came while it was being forked
            os.kill(replacement, signal.SIGTERM)
        log.error("worker %d stopped %s; worker %d replaces it", pid, died, replacement)
    return clean


def _copy_catalogue_objects(service: Service) -> None:
    """Take, before serving, the private copies of memory that the worker's first requests would take.

    A forked worker shares its parent's memory until it writes to it, and reading a Python object writes
    its reference count: the first response naming an item copies the page that holds the item's ID, title
    and categories. With a million items that was ~100,000 page copies per worker over its first 15 s of
    traffic (16,000 a second at first), and requests queued behind them for up to 700 ms (BENCHMARKS.md).
    Touching every such object once here takes those copies before the first request.
    """
    started = time.perf_counter()
    catalogue = service.catalogue
    for values in (catalogue.item_ids, catalogue.titles, catalogue.categories):
        for _ in values:
            pass
    log.info("worker %d: catalogue objects copied in %.1f s", os.getpid(), time.perf_counter() - started)


def _run(service: Service, token: str | None, listener: socket.socket, access_log: bool) -> None:
    app = create_app(service, token)
    config = uvicorn.Config(app, log_level="info", access_log=access_log, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[listener])


def bind(host: str, port: int, copies: int = 1) -> list[socket.socket]:
    """TCP sockets bound to ``host:port``, one per worker; a clear error when the address is wrong or taken.

    Workers sharing one socket take its connections as their event loops race to accept them, and the
    first to start wins most: 47 of 64 keep-alive connections went to one of two workers in the load
    benchmark, which then queued three quarters of the requests. On Linux each worker gets a socket of its
    own with SO_REUSEPORT, and the kernel spreads new connections over them by a hash of their addresses.
    Elsewhere (where SO_REUSEPORT does not balance) the workers share one socket.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: a port is a number from 1 to 65535 (0 picks a free one).")
    if copies == 1 or not sys.platform.startswith("linux"):
        return [_bind_one(host, port, reuse_port=False)]
    # A plain bind first: it fails on a port that another server holds, even one that shares it with
    # SO_REUSEPORT (which would otherwise let this server join that one's traffic), and turns port 0
    # into a free port for all the copies.
    probe = _bind_one(host, port, reuse_port=False)
    port = probe.getsockname()[1]
    probe.close()
    listeners: list[socket.socket] = []
    try:
        for _ in range(copies):
            listeners.append(_bind_one(host, port, reuse_port=True))
    except ConfigError:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _bind_one(host: str, port: int, reuse_port: bool) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConfigError(f"--host {host!r}: not an address this machine can listen on ({error}).") from None
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}.") from None
    return listener
