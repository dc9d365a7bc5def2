"""Requests a user can fix: answered with their message, logged in one line.

JupyterHub logs a failed spawn several times (the options hook, the user,
the spawn page), with tracebacks. For a request the user can fix (bad
options: 400) or retry (too few free GPUs: 409) that is noise for admins and
hides real errors. :class:`UserMistake` carries the message the page shows;
:class:`OneLinePerMistake`, a filter on the hub's logger, keeps one line.
"""

from __future__ import annotations

import logging
from collections import deque

from tornado import web

_unsaid: deque[str] = deque(maxlen=64)  # mistakes raised, not logged yet
_said: deque[str] = deque(maxlen=64)  # logged once already


class UserMistake(web.HTTPError):
    """HTTP 400/409 whose message is for the user, shown as is (no "HTTP 400: error (…)")."""

    def __init__(self, status_code: int, message: str):
        super().__init__(status_code, "%s", message)
        self.jupyterhub_message = message  # what JupyterHub's pages show
        _unsaid.append(message)


class OneLinePerMistake(logging.Filter):
    """Drop records that carry a UserMistake (tracebacks); of the error lines
    that name its message, the first stays (as a warning), the rest go."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, UserMistake):
            return False
        if record.levelno < logging.ERROR or not (_unsaid or _said):
            return True
        text = record.getMessage()
        for message in _unsaid:  # the first line of a new mistake: keep it
            if message in text:
                _unsaid.remove(message)
                _said.append(message)
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                return True
        return not any(message in text for message in _said)


def log_user_mistakes_once(log: logging.Logger) -> None:
    """Filter the hub's logger, and tornado's app_log (jupyterhub.user logs there)."""
    for logger in (log, logging.getLogger("tornado.application")):
        if not any(isinstance(f, OneLinePerMistake) for f in logger.filters):
            logger.addFilter(OneLinePerMistake())
