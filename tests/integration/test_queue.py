"""The GPU queue: a start that finds no free GPU waits in line and sees its place."""

from concurrent.futures import ThreadPoolExecutor

import docker.errors

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import Progress, container_of, gpus_of, wait_for

def has_container(engine, name: str) -> bool:
    try:
        container_of(engine, name)
        return True
    except docker.errors.NotFound:
        return False


def positions(watchers: dict) -> dict:
    return {name: watcher.position() for name, watcher in watchers.items()}


def test_five_users_two_gpus_wait_in_line_move_up_and_cancel(start_hub, engine):
    gpus = FakeNVML.make_gpus(2)
    hub = start_hub(gpus)
    users = ["u1", "u2", "u3", "u4", "u5"]
    hub.create_users(*users)

    with ThreadPoolExecutor(len(users)) as pool:
        answers = dict(zip(users, pool.map(lambda name: hub.spawn(name, {"gpus": 1}), users)))
    assert all(r.status_code in (201, 202) for r in answers.values()), answers

    def state(name):
        server = hub.server(name)
        return "ready" if server and server["ready"] else "pending" if server else "none"

    wait_for(lambda: sorted(map(state, users)).count("ready") == 2, "two servers up", timeout=120)
    running = [name for name in users if state(name) == "ready"]
    waiting = {name: Progress(hub, name) for name in users if name not in running}
    wait_for(lambda: sorted(filter(None, positions(waiting).values())) == [1, 2, 3],
             f"places 1, 2, 3 in the queue (now {positions(waiting)})", timeout=60)
    held = {name: gpus_of(container_of(engine, name)) for name in running}
    assert sorted(sum(held.values(), [])) == sorted(gpu.uuid for gpu in gpus)
    order = sorted(waiting, key=lambda name: positions(waiting)[name])
    message = waiting[order[0]].messages()[-1]
    assert "Waiting for a GPU: position 1 in the queue; 2 GPUs, all in use" in message, message

    # A GPU server stops: the first in line starts on its GPU, the others move up.
    hub.stop_server(running[0])
    state, message = hub.wait_spawn(order[0])
    assert state == "ready", message
    assert gpus_of(container_of(engine, order[0])) == held[running[0]]
    messages = waiting[order[0]].messages()
    assert any(m.startswith("Assigned GPU 0") or m.startswith("Assigned GPU 1") for m in messages), messages
    assert "Starting container" in messages and "Waiting for Jupyter" in messages, messages
    wait_for(lambda: (positions(waiting)[order[1]], positions(waiting)[order[2]]) == (1, 2),
             f"the others move up (now {positions(waiting)})", timeout=30)

    # The first in line cancels (the page's Cancel): the one behind moves up,
    # nothing is claimed or made for the one who left.
    cancelled = hub.api("DELETE", f"/users/{order[1]}/server")
    assert cancelled.status_code in (202, 204), cancelled.text
    wait_for(lambda: hub.server(order[1]) is None, "the cancelled start to end", timeout=30)
    wait_for(lambda: positions(waiting)[order[2]] == 1, "the last one to move up", timeout=30)
    assert not has_container(engine, order[1])
    assert "Assigned GPU(s)" not in "\n".join(
        line for line in hub.log_tail(400).splitlines() if f" to {order[1]}" in line
    )

    # The next GPU that comes free goes to the one still waiting.
    hub.stop_server(running[1])
    assert hub.wait_spawn(order[2])[0] == "ready"
    assert gpus_of(container_of(engine, order[2])) == held[running[1]]
    for watcher in waiting.values():
        watcher.close()


def test_a_wait_ends_after_the_queue_timeout_with_a_clear_message(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1), extra_config="c.GPUDockerSpawner.queue_timeout = 3\n")
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    refused = hub.spawn("bob", {"gpus": 1})  # the wait ends before the hub answers 202
    assert refused.status_code == 409, refused.text
    message = refused.json()["message"]
    assert "No GPU came free in the 3 s you waited in the queue (you were at position 1)" in message
    assert "start with 0 GPUs" in message
    assert not has_container(engine, "bob")
    assert hub.server("bob") is None


def test_a_hub_restart_empties_the_queue_and_tells_those_who_waited(start_hub, engine):
    gpus = FakeNVML.make_gpus(1)
    hub = start_hub(gpus)
    hub.create_users("ann")
    hub.start_server("ann", {"gpus": 1})
    bob = hub.login("bob")
    started = hub.form_post(bob, "/hub/spawn/bob", {"gpus": "1"})
    assert started.status_code == 302, started.text
    line = Progress(hub, "bob")
    wait_for(lambda: line.position() == 1, "bob in line", timeout=60)

    hub.stop()  # SIGTERM: the hub goes away with bob in line
    hub.start()

    assert hub.server("bob") is None  # the wait did not survive
    assert not has_container(engine, "bob")
    page = bob.get(f"{hub.url}/hub/spawn/bob", timeout=30)
    assert "The hub restarted while your server was waiting for a GPU (position 1)" in page.text
    assert "no GPU is held for you" in page.text
    # said once
    assert "The hub restarted" not in bob.get(f"{hub.url}/hub/spawn/bob", timeout=30).text
    assert gpus_of(container_of(engine, "ann")) == [gpus[0].uuid]  # ann kept her GPU
    assert hub.start_server("bob", {"gpus": 0})["ready"]  # and bob may start without one
