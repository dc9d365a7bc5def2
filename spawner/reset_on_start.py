"""A spawner mixin: Reset my environment, recorded on the server and carried out
at its next start (``environment_reset.py`` does the move; hub/reset.py records
the request from the home page and the REST API)."""

from __future__ import annotations

from functools import partial

from dockerspawner import DockerSpawner
from jupyterhub.utils import url_path_join
from traitlets import Unicode
from traitlets.config import Configurable

from . import environment_reset
from .user_errors import UserMistake


class ResetOnStart(Configurable):
    reset_requested = Unicode("", help="UTC time (20261122T203800Z) of a reset of this server's "
                              "environment to carry out at its next start (state; hub/reset.py).")

    # reset_requested survives clear_state: JupyterHub clears the state at each
    # stop and before each start, and the request must live until a start carries it out
    def load_state(self, state):
        super().load_state(state)
        self.reset_requested = state.get("reset_requested", "")

    def get_state(self):
        state = super().get_state()
        if self.reset_requested:
            state["reset_requested"] = self.reset_requested
        return state

    async def _reset_if_requested(self) -> None:
        """The requested reset; the request is done only when the move worked.
        Called where the image is chosen and pulled and the old container gone."""
        if not self.reset_requested:
            return
        self._report("Resetting your environment: moving its folders aside", 45)
        # the hub's own short-lived container, not a server: it skips the
        # server's labels and checks (environment_reset sets its own)
        try:
            await environment_reset.carry_out(
                partial(DockerSpawner.docker, self), binds=self.volume_binds,
                home=self.home, image=self.image, user=self.container_user,
                request_stamp=self.reset_requested, hub=self.hub_id,
                name=f"{self.object_name}.reset", log=self.log, server=self._log_name,
            )
        except environment_reset.ResetFailed as error:
            page = url_path_join(self.hub.base_url, "reset", self.user.escaped_name, self.name)
            # 409: the user can cancel the reset and start as before
            raise UserMistake(409, f"{error}. To start without the reset, cancel it on {page}.") from None
        self.reset_requested = ""
