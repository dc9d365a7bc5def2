"""A reading the service repeats on a timer (containers, groups, volume sizes)
that may fail for a while: the first failure is a warning, the next ones are
quiet until a reading works again. No I/O."""

from __future__ import annotations

import logging


class WarnOnce:
    def __init__(self, log: logging.Logger, recovered: str = ""):
        self.log = log
        self.recovered = recovered  # logged (info) when a reading works after failures
        self.failing = False

    def failed(self, message: str, *args) -> None:
        if not self.failing:
            self.log.warning(message, *args)
        self.failing = True

    def worked(self) -> None:
        if self.failing and self.recovered:
            self.log.info(self.recovered)
        self.failing = False
