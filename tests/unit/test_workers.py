"""gateway.server.workers, the supervisor's decisions: when to restart a worker, when
to give up."""

from __future__ import annotations

from gateway.server.workers import MAX_QUICK_FAILURES, STABLE_S, Restarts, exit_status


def test_workers_a_worker_that_ran_a_while_restarts_at_once() -> None:
    r = Restarts()
    assert [r.after(STABLE_S + 1) for _ in range(20)] == [0.0] * 20


def test_workers_quick_failures_back_off_then_give_up() -> None:
    r = Restarts()
    delays = [r.after(0.1) for _ in range(MAX_QUICK_FAILURES)]
    assert delays[-1] is None  # gave up: it cannot start
    waits = [d for d in delays[:-1] if d is not None]
    assert len(waits) == MAX_QUICK_FAILURES - 1 and waits == sorted(waits) and waits[0] > 0


def test_workers_a_worker_that_ran_a_while_clears_earlier_failures() -> None:
    r = Restarts()
    for _ in range(MAX_QUICK_FAILURES - 1):
        assert r.after(0.1) is not None
    assert r.after(STABLE_S) == 0.0
    assert r.after(0.1) is not None  # counted from one again


def test_workers_exit_status_names_signals() -> None:
    assert exit_status(-9) == "signal SIGKILL"
    assert exit_status(1) == "exit code 1"
    assert exit_status(None) == "no exit status"
