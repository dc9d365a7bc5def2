"""The gpu-usage service's reading of the hub's groups (hub/gpu_usage/hub_groups.py)."""

import asyncio

from gpuhub.hub.gpu_usage.hub_groups import HubGroups

GROUPS = [{"name": "ml-101", "users": ["ann"], "properties": {"gpuhub_cohort": "ml-101"}}]


class CountedGroups(HubGroups):
    """The hub's answer without the hub: each request counted, each takes a moment."""

    def __init__(self, answer):
        super().__init__("http://hub.invalid/hub/api", "token", interval=60)
        self.answer, self.requests = answer, 0

    async def fetch(self):
        self.requests += 1
        await asyncio.sleep(0.05)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_pages_asking_at_once_for_an_unknown_cohort_share_one_request():
    groups = CountedGroups(GROUPS)
    found = await asyncio.gather(*(groups.find("ml-101") for _ in range(20)))
    assert groups.requests == 1
    assert {cohort.name for cohort in found} == {"ml-101"}
    assert await groups.find("ml-102") is None and groups.requests == 1  # asked again only after RECHECK


async def test_a_failed_reading_keeps_the_last_answer_and_warns_once(caplog):
    groups = CountedGroups(GROUPS)
    await groups.refresh()
    groups.answer = OSError("hub down")
    await groups.refresh()
    await groups.refresh()
    assert "ml-101" in groups.cohorts
    assert sum("Cannot read the hub's groups" in r.message for r in caplog.records) == 1


def test_warn_once_says_when_a_reading_works_again(caplog):
    import logging

    from gpuhub.hub.gpu_usage.warn_once import WarnOnce

    caplog.set_level(logging.INFO)
    state = WarnOnce(logging.getLogger("t"), "Docker answers again")
    state.worked()  # nothing failed: nothing to say
    state.failed("down (%s)", 1)
    state.failed("down (%s)", 2)
    state.worked()
    assert [r.getMessage() for r in caplog.records] == ["down (1)", "Docker answers again"]
