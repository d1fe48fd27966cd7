"""SharedSlots: at most N holders of one key across threads and processes; a dead holder frees its slot."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from seccollect.http.slots import SharedSlots, SlotWaitTooLong


def test_at_most_limit_holders_across_threads(tmp_path):
    active, most = [0], [0]
    lock = threading.Lock()

    def work():
        slots = SharedSlots("acct", 2, directory=tmp_path)  # each worker its own object, as tasks have
        for _ in range(5):
            with slots.hold():
                with lock:
                    active[0] += 1
                    most[0] = max(most[0], active[0])
                time.sleep(0.01)
                with lock:
                    active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2


def test_a_full_set_makes_the_next_holder_wait_and_gives_up_at_max_wait(tmp_path):
    slots = SharedSlots("acct", 1, directory=tmp_path)
    other = SharedSlots("acct", 1, directory=tmp_path)
    with slots.hold(), pytest.raises(SlotWaitTooLong):
        with other.hold(max_wait=0.1):
            pass
    with other.hold(max_wait=0.1):  # free again once released
        pass


def test_keys_do_not_share_slots_and_hold_no_secret(tmp_path):
    a, b = SharedSlots("acct-a", 1, directory=tmp_path), SharedSlots("acct-b", 1, directory=tmp_path)
    with a.hold(), b.hold(max_wait=0.1):
        pass
    assert "acct" not in a.folder.name


def _hold_and_die(directory, ready):
    slots = SharedSlots("acct", 1, directory=directory)
    with slots.hold():
        ready.set()
        time.sleep(60)


def test_a_killed_holder_frees_its_slot(tmp_path):
    ready = multiprocessing.Event()
    process = multiprocessing.get_context("fork").Process(target=_hold_and_die, args=(tmp_path, ready))
    process.start()
    assert ready.wait(10)
    slots = SharedSlots("acct", 1, directory=tmp_path)
    with pytest.raises(SlotWaitTooLong):
        with slots.hold(max_wait=0.1):
            pass
    process.kill()
    process.join()
    with slots.hold(max_wait=5):
        pass


def test_a_pause_is_shared_by_every_holder_of_the_key_and_the_latest_deadline_wins(tmp_path):
    a, b = SharedSlots("acct", 1, directory=tmp_path), SharedSlots("acct", 1, directory=tmp_path)
    assert b.paused_for() == 0
    a.pause(30)
    assert 25 < b.paused_for() <= 30
    a.pause(5)  # an earlier deadline does not shorten the pause
    assert b.paused_for() > 25
    assert SharedSlots("other", 1, directory=tmp_path).paused_for() == 0
