"""``intentrec serve`` and ``intentrec recommend`` run as a user would: a real server on 127.0.0.1, files.

Each command starts a Python process (seconds of imports), so there are few of them; the error paths of
the library functions behind them are tested in-process.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from intentrec.errors import ConfigError
from intentrec.recommender import Recommender
from intentrec.serving.schemas import RecommendRequest
from intentrec.serving.server import bind

INTENTREC = Path(sys.executable).parent / "intentrec"
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def intentrec(*args: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(INTENTREC), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- serve -------------------------------------------------------------------------------------------------


class Server:
    """``intentrec serve`` in a process of its own, its output read as it comes."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [str(INTENTREC), "serve", *map(str, args)],
            env={**ENV, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, times: int = 1) -> None:
        deadline = time.monotonic() + 60
        while self.output.count(text) < times:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, f"no {text!r} {times} times within a minute\n{self.output}"
            time.sleep(0.1)

    def interrupt(self) -> int:
        """Ctrl-C; the exit status once it has stopped."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self.reader.join(timeout=30)
        return self.process.returncode


def test_a_real_server_in_two_processes_answers_as_the_service_does(run, service) -> None:
    port, token = free_port(), "t0ken"
    server = Server(run, "--port", port, "--workers", 2, env={"INTENTREC_TOKEN": token})
    try:
        server.wait_for("Application startup complete", times=2)  # both workers, before Ctrl-C
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/health").status_code == 200
            body = {"user": "u3", "k": 5, "exclude_categories": ["three"]}
            assert client.post("/recommend", json=body).status_code == 401
            response = client.post("/recommend", json=body, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            expected = service.recommend(RecommendRequest.model_validate(body))
            assert response.json() == expected
    finally:
        status = server.interrupt()
    output = server.output
    # the supervisor passes the stop on and waits: both workers shut down cleanly
    assert status == 0 and output.count("Application shutdown complete") == 2, output
    assert f"on http://127.0.0.1:{port} in 2 process(es)" in output and "bearer token required" in output


def healthy_on_new_connections(port: int, times: int = 8) -> bool:
    """/health answers on ``times`` new connections, which the kernel spreads over every worker's socket."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return all(
            client.get("/health", headers={"Connection": "close"}).status_code == 200 for _ in range(times)
        )


def kill_a_worker(server: Server, signum: int = signal.SIGKILL) -> int:
    """Send ``signum`` to the worker that started last, once both serve; its PID."""
    server.wait_for("Application startup complete", times=2)
    victim = int(re.findall(r"Started server process \[(\d+)\]", server.output)[-1])
    os.kill(victim, signum)
    return victim


def test_a_worker_that_dies_is_replaced_on_its_socket(run) -> None:
    port = free_port()
    server = Server(run, "--port", port, "--workers", 2, "--set", "restart_after_seconds=0")
    try:
        victim = kill_a_worker(server)
        server.wait_for(f"worker {victim} stopped by signal 9; worker ")
        replacement = int(re.search(rf"worker {victim} stopped by signal 9; worker (\d+)", server.output)[1])
        server.wait_for("Application startup complete", times=3)
        assert healthy_on_new_connections(port)  # the victim's socket included
        os.kill(replacement, 0)  # still running: it was not a stray process that died at once
    finally:
        status = server.interrupt()
    # the stop reached the replacement too; the death is still reported by the exit status
    assert status == 1 and server.output.count("Application shutdown complete") == 2, server.output


# SIGTERM to a worker alone: uvicorn shuts it down cleanly and then ends by the signal, but nobody asked
# the server to stop
@pytest.mark.parametrize(
    ("signum", "how"), [(signal.SIGKILL, "by signal 9"), (signal.SIGTERM, "by signal 15")]
)
def test_a_worker_that_ends_soon_after_its_start_is_not_replaced(run, signum: int, how: str) -> None:
    port = free_port()
    server = Server(run, "--port", port, "--workers", 2, "--set", "restart_after_seconds=600")
    try:
        victim = kill_a_worker(server, signum)
        server.wait_for(f"worker {victim} stopped {how}")
        assert re.search(
            rf"worker {victim} stopped {how} [\d.]+ s after it started, so it is not replaced; "
            "1 still serving",
            server.output,
        ), server.output
        assert healthy_on_new_connections(port)  # none sent to the victim's socket, which is closed
    finally:
        status = server.interrupt()
    shut_down = 2 if signum == signal.SIGTERM else 1  # the victim too, when it could
    assert status == 1 and server.output.count("Application shutdown complete") == shut_down, server.output


def test_a_bad_port_is_a_one_line_error(run) -> None:
    done = intentrec("serve", run, "--port", "70000", expect=2)
    assert (
        done.stderr.strip() == "error: --port 70000: a port is a number from 1 to 65535 (0 picks a free one)."
    )


def test_bind_names_a_taken_port_and_a_bad_host() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            bind("127.0.0.1", port)
    with pytest.raises(ConfigError, match="--host 'no such host': not an address this machine can listen on"):
        bind("no such host", 8000)
    (listener,) = bind("127.0.0.1", 0)
    listener.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux")
def test_a_port_shared_by_another_servers_workers_is_refused_not_joined() -> None:
    (first, second) = bind("127.0.0.1", 0, copies=2)
    first.listen()
    port = first.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
        bind("127.0.0.1", port, copies=2)
    first.close()
    second.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux")
def test_workers_get_a_socket_each_and_the_kernel_spreads_connections_over_them() -> None:
    listeners = bind("127.0.0.1", 0, copies=2)
    port = listeners[0].getsockname()[1]
    assert listeners[1].getsockname()[1] == port
    for listener in listeners:
        listener.listen()
        listener.settimeout(0)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    accepted = []
    for listener in listeners:
        count = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                listener.accept()[0].close()
                count += 1
        accepted.append(count)
    for each in [*clients, *listeners]:
        each.close()
    # by a hash of the client's port: all 32 on one socket has odds of 2 in 4 billion
    assert sum(accepted) == 32 and min(accepted) > 0, accepted


# --- recommend ---------------------------------------------------------------------------------------------


def test_recommend_writes_the_users_recommendations_to_parquet(run, recommender, tmp_path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u4\nu1\n")
    out = tmp_path / "recs.parquet"
    done = intentrec("recommend", run, "--users", users, "--k", 3, "--include-category", "odd", "--out", out)
    assert "wrote 6 recommendations for 2 users" in done.stderr
    expected = recommender.recommend(["u4", "u1"], k=3, include_categories=["odd"])
    assert_frame_equal(pl.read_parquet(out), expected)


def test_recommend_refuses_category_filters_that_leave_no_item(run, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    filters = ("--include-category", "odd", "--exclude-category", "odd")
    done = intentrec("recommend", run, "--k", 3, *filters, "--out", out, expect=2)
    assert "including odd and excluding odd leaves no item" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    typo = intentrec("recommend", run, "--include-category", "od", "--out", out, expect=2)
    assert typo.stderr.startswith("error: --include-category / --exclude-category: unknown category 'od'")


def test_recommend_asks_at_the_time_given(asked_run, tmp_path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u4\nu1\n")
    out = tmp_path / "recs.parquet"
    intentrec("recommend", asked_run, "--users", users, "--k", 3, "--at", 1_650_000_000, "--out", out)
    expected = Recommender.load(asked_run).recommend(["u4", "u1"], k=3, at=1_650_000_000)
    assert_frame_equal(pl.read_parquet(out), expected)
    now = intentrec("recommend", asked_run, "--users", users, "--out", tmp_path / "now.parquet")
    assert "the log ended on 2020-09-13" in " ".join(now.stderr.split())  # asked now: said, once
    early = intentrec("recommend", asked_run, "--users", users, "--at", 1_500_000_000, "--out", out, expect=2)
    assert "before the last event" in early.stderr and "Traceback" not in early.stderr
    assert_frame_equal(pl.read_parquet(out), expected)  # the file written before is untouched


def test_recommend_names_a_bad_users_file_in_one_line(run, tmp_path) -> None:
    missing = tmp_path / "nobody.txt"
    done = intentrec("recommend", run, "--users", missing, "--out", tmp_path / "recs.parquet", expect=2)
    assert done.stderr.strip() == (
        f"error: --users {missing}: no such file; give 'all' or a file with one user ID per line."
    )


def test_recommend_never_writes_over_a_file_of_its_run(run) -> None:
    table = run / "dataset" / "interactions.parquet"
    before = table.read_bytes()
    done = intentrec("recommend", run, "--out", table, expect=2)
    assert done.stderr.strip().startswith(f"error: --out {table}: that is a file of the run {run}")
    assert table.read_bytes() == before
