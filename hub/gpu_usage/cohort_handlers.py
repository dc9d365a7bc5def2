"""The organizer's report of a cohort: a page (inside the hub's frame), JSON
and CSV. Who may see it: holders of ``custom:gpu-usage:read-all`` (admins,
organizers), or of its ``!group=<cohort>`` form for that cohort only (the
cohort's instructors, through their role: hub/cohort/names.py).
"""

from __future__ import annotations

import re

from tornado import web

from . import READ_ALL_SCOPE, report
from .cohorts import filtered_scope, may_read_cohort, may_read_some_cohort, readable_cohorts
from .handlers import ApiHandler, PageHandler, UsageHandler


class CohortAccess(UsageHandler):
    def scopes(self) -> set[str]:
        return set((self.current_user or {}).get("scopes", ()))

    async def cohort_report(self, name: str) -> dict:
        if not may_read_cohort(self.scopes(), name):
            raise web.HTTPError(403, f"the report of cohort {name!r} needs the scope {READ_ALL_SCOPE} "
                                f"or {filtered_scope(name)} (the cohort's instructors)")
        cohort = await self.usage.cohorts.find(name)
        if cohort is None:
            known = ", ".join(readable_cohorts(self.scopes(), self.usage.cohorts.cohorts)) or "none"
            raise web.HTTPError(404, f"no cohort {name!r} on this hub (a cohort is a group of that name "
                                f"with the property gpuhub_cohort; `gpuhub cohort import` makes them). "
                                f"Cohorts you may see: {known}")
        return report.cohort_report(cohort, self.usage.figures())


class CohortsPage(CohortAccess, PageHandler):
    """The cohorts this user may see, each linked to its report."""

    @web.authenticated
    def get(self):
        if not may_read_some_cohort(self.scopes()):
            raise web.HTTPError(403, "cohort reports are for admins, organizers and instructors")
        cohorts = readable_cohorts(self.scopes(), self.usage.cohorts.cohorts)
        self.render_page("cohorts.html", page="cohorts", cohorts=cohorts)


class CohortPage(CohortAccess, PageHandler):
    @web.authenticated
    async def get(self, name: str):
        data = await self.cohort_report(name)
        self.render_page("cohort.html", page="cohorts", data=data, report=report)


class CohortReportApi(CohortAccess, ApiHandler):
    async def get(self, name: str):
        self.write_json(await self.cohort_report(name))


class CohortReportCsv(CohortAccess, ApiHandler):
    async def get(self, name: str):
        data = await self.cohort_report(name)
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}-report.csv"')
        self.finish(report.report_csv(data))
