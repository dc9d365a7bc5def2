"""The GPU queue's line and the start gate: order, places, turns."""

import asyncio

from gpuhub.spawner import progress
from gpuhub.spawner.admission import StartGate
from gpuhub.spawner.allocator import ServerKey
from gpuhub.spawner.waiting_line import WaitingLine


def test_first_come_first_served_with_priority_and_kinds():
    async def run():
        line = WaitingLine()
        ann = line.join(ServerKey("ann"), kind="A100")
        bob = line.join(ServerKey("bob"), kind="A100")
        cid = line.join(ServerKey("cid"), kind="H100")
        prof = line.join(ServerKey("prof"), kind="A100", priority=10)
        assert [line.position(t) for t in (prof, ann, bob, cid)] == [1, 2, 3, 4]
        assert line.ahead_of_kind(cid) == 0  # nobody waits for an H100 before cid
        assert line.ahead_of_kind(bob) == 2
        assert line.waiting("A100", priority=0) and not line.waiting("A100", priority=11)
        assert not line.waiting("V100")
        line.leave(ann)
        assert line.position(bob) == 2 and line.ahead_of_kind(bob) == 1
        line.leave(ann)  # twice is harmless
        assert len(line) == 3

    asyncio.run(run())


def test_a_change_wakes_those_waiting():
    async def run():
        line = WaitingLine()
        ann = line.join(ServerKey("ann"))
        bob = line.join(ServerKey("bob"))
        await bob.wait(0)  # clears the join's wake-up
        waiter = asyncio.ensure_future(bob.wait(30))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        line.leave(ann)
        await asyncio.wait_for(waiter, 1)
        assert line.position(bob) == 1

    asyncio.run(run())


def test_the_start_gate_lets_a_few_through_in_order():
    async def run():
        gate = StartGate(slots=2)
        inside, most, places = [], [0], {}

        async def start(name):
            async with gate.slot(ServerKey(name), lambda place: places.setdefault(name, []).append(place)):
                inside.append(name)
                most[0] = max(most[0], gate.running)
                await asyncio.sleep(0.05)

        await asyncio.gather(*(start(f"u{i}") for i in range(6)))
        assert most[0] == 2 and gate.running == 0 and len(gate.line) == 0
        assert inside == [f"u{i}" for i in range(6)]  # in the order they came
        assert places["u2"][0] == 1 and places["u5"][0] == 4
        assert places["u5"] == sorted(places["u5"], reverse=True) and places["u5"][-1] < 4  # moved up

    asyncio.run(run())


def test_a_cancelled_start_leaves_the_gate_line():
    async def run():
        gate = StartGate(slots=1)
        release = asyncio.Event()

        async def hold():
            async with gate.slot(ServerKey("a"), lambda place: None):
                await release.wait()

        holder = asyncio.ensure_future(hold())
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(hold())
        await asyncio.sleep(0.01)
        assert len(gate.line) == 1
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert len(gate.line) == 0 and gate.running == 1
        release.set()
        await holder
        assert gate.running == 0

    asyncio.run(run())


def test_progress_log_replays_then_follows():
    async def run():
        log = progress.ProgressLog()
        log.report("one", 10)
        log.report("one", 10)  # a repeat is dropped
        seen = []

        async def follow():
            async for event in log.follow():
                seen.append(event["message"])
                if len(seen) == 2:
                    return

        follower = asyncio.ensure_future(follow())
        await asyncio.sleep(0.01)
        log.report("two")
        await asyncio.wait_for(follower, 1)
        assert seen == ["one", "two"]

    asyncio.run(run())


def test_queue_message_says_position_and_what_to_do():
    message = progress.queued(place=3, total=8, requested=1, free=0, next_free_in=700)
    assert message.startswith(
        "Waiting for a GPU: position 3 in the queue; 8 GPUs, all in use, next expected free in ~12 min."
    )
    assert "start with 0 GPUs" in message
    assert "2 GPUs: position 1" in progress.queued(1, 4, 2, 1, None)
    assert "1 free (you asked for more)" in progress.queued(1, 4, 2, 1, None)
    assert progress.duration(3) == "3 s" and progress.duration(1800) == "30 min"


def test_the_queue_on_disk_tells_those_who_waited_once(tmp_path):
    import logging

    from gpuhub.spawner.queue_record import QueueRecord

    path = str(tmp_path / "gpu-queue.json")

    async def run_here(function, *args):
        return function(*args)

    async def run():
        line = WaitingLine()
        record = QueueRecord(path, line, logging.getLogger("test"), run_here)
        line.join(ServerKey("ann"))
        line.join(ServerKey("bob", "big"))
        record.save()
        await asyncio.sleep(0.01)
        # the hub stops here; the next one reads what was left
        after = QueueRecord(path, WaitingLine(), logging.getLogger("test"), run_here)
        after.start_loading()
        assert "(position 1)" in await after.notice_for(ServerKey("ann"))
        notice = await after.notice_for(ServerKey("bob", "big"))
        assert notice.startswith("The hub restarted while your server big was waiting for a GPU (position 2)")
        assert await after.notice_for(ServerKey("ann")) == ""  # said once
        again = QueueRecord(path, WaitingLine(), logging.getLogger("test"), run_here)
        again.start_loading()
        assert await again.notice_for(ServerKey("bob", "big")) == ""  # the file was emptied

    asyncio.run(run())
