"""What users ask for, through the REST API and the spawn form: checked on the hub."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import NO_QUEUE, PREFIX, container_of, gpus_of

GIB = 1 << 30
FUZZ = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def hub(start_hub):
    hub = start_hub(FakeNVML.make_gpus(4), extra_config=NO_QUEUE)
    hub.create_users("ann")
    hub.create_users("rita", groups=("researchers",))
    return hub


def no_server(hub, engine, name):
    return hub.server(name) is None and not engine.containers.list(
        all=True, filters={"name": f"^{PREFIX}-{name}$"}
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ({"gpus": -1}, "gpus must be a whole number from 0 to 2 (your GPU quota), got -1."),
        ({"gpus": 99}, "gpus must be a whole number from 0 to 2 (your GPU quota), got 99."),
        ({"gpus": "two"}, "gpus must be a whole number from 0 to 2, got 'two'."),
        ({"gpus": 3}, "gpus must be a whole number from 0 to 2 (your GPU quota), got 3."),
        (
            {"gpus": 1, "extra_host_config": {"privileged": True}},
            "Unknown option(s): 'extra_host_config'. Allowed: gpus (a whole number from 0 to 2).",
        ),
        ({"image": "evil/miner:latest"}, "Unknown option(s): 'image'."),
    ],
)
def test_bad_rest_input_gets_400_and_changes_nothing(hub, engine, body, message):
    response = hub.spawn("ann", body)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(message)
    assert no_server(hub, engine, "ann")


def test_group_settings_raise_quota_and_limits(hub, engine):
    hub.start_server("rita", {"gpus": 3})
    container = container_of(engine, "rita")
    assert len(gpus_of(container)) == 3
    assert (container.attrs["HostConfig"]["Memory"], container.attrs["HostConfig"]["PidsLimit"]) \
        == (2 * GIB, 2048)
    response = hub.spawn("rita", {"gpus": 5})
    assert response.status_code == 400  # already running is a 400 too, but says so
    hub.stop_server("rita")
    assert "from 0 to 4" in hub.spawn("rita", {"gpus": 5}).json()["message"]


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-5, 200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
bodies = st.dictionaries(
    st.sampled_from(["gpus", "image", "mem_limit", "cmd", "volumes"]) | st.text(max_size=5),
    json_leaf | st.lists(json_leaf, max_size=2) | st.integers(0, 3),
    max_size=3,
)


@FUZZ
@given(body=bodies)
def test_fuzzed_rest_input_is_2xx_within_quota_or_400(hub, engine, body):
    response = hub.spawn("ann", body)
    assert response.status_code in (201, 202, 400), response.text
    if response.status_code == 400:
        assert response.json()["message"]
        assert no_server(hub, engine, "ann")
        return
    state, message = hub.wait_spawn("ann")
    assert state == "ready", message
    assert len(gpus_of(container_of(engine, "ann"))) == body.get("gpus", 1) <= 2
    hub.stop_server("ann")


@pytest.fixture
def ann(hub):
    """ann, logged in through the hub's login page."""
    return hub.login("ann")


def spawn_page(hub, session):
    return session.get(f"{hub.url}/hub/spawn/ann", timeout=30)


def post_form(hub, session, fields):
    return hub.form_post(session, "/hub/spawn/ann", fields)


def test_spawn_form_offers_quota_and_shows_free_gpus(hub, ann, engine):
    page = spawn_page(hub, ann)
    assert page.status_code == 200
    options = re.findall(r'<option value="(\d+)"( selected)?', page.text)
    assert options == [("0", ""), ("1", " selected"), ("2", "")]
    assert re.search(r'<span id="gpuhub-free">4</span> of 4 GPUs free right now', page.text)

    hub.start_server("rita", {"gpus": 3})
    assert re.search(r'<span id="gpuhub-free">1</span> of 4', spawn_page(hub, ann).text)

    refused = post_form(hub, ann, {"gpus": "2"})
    assert refused.status_code == 409
    assert "only 1 of the 4 GPUs on this host is free right now" in refused.text

    accepted = post_form(hub, ann, {"gpus": "1"})
    assert accepted.status_code == 302, accepted.text
    assert hub.wait_spawn("ann")[0] == "ready"
    assert len(gpus_of(container_of(engine, "ann"))) == 1


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["gpus", "image", "privileged"]),
        st.text(max_size=5) | st.sampled_from(["-1", "3", "99", " 1 ", "1e0", "0x1"]),
        min_size=1,
        max_size=2,
    )
)
def test_fuzzed_form_input_is_accepted_within_quota_or_400(hub, ann, engine, fields):
    response = post_form(hub, ann, fields)
    assert response.status_code in (302, 400), response.text[:500]
    if response.status_code == 400:
        assert "must be" in response.text or "Unknown option" in response.text
        assert no_server(hub, engine, "ann")
        return
    assert hub.wait_spawn("ann")[0] == "ready"
    assert len(gpus_of(container_of(engine, "ann"))) == int(fields.get("gpus", 1)) <= 2
    hub.stop_server("ann")


def test_a_user_mistake_is_one_warning_and_a_plain_message(hub, engine):
    before = len(hub.log_path.read_text().splitlines())
    assert hub.spawn("ann", {"gpus": 9}).status_code == 400
    page = hub.form_post(hub.login("ann"), "/hub/spawn", {"gpus": "9"})
    assert page.status_code == 400
    assert "Error: gpus must be a whole number from 0 to 2 (your GPU quota), got 9." in page.text
    assert "HTTP 400" not in page.text
    log = hub.log_path.read_text().splitlines()[before:]
    mentions = [line for line in log if "got 9." in line and " POST " not in line]
    assert len(mentions) == 2, "\n".join(log)  # one per attempt
    assert all(line.startswith("[W") for line in mentions), mentions
    assert not any("Traceback" in line for line in log), "\n".join(log)
