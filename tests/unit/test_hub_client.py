"""The command-line tools' hub client: where the hub is, the token, the hub's own messages."""

import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gpuhub.hub.hub_client import HubAPIError, HubClient, add_hub_arguments, api_url


@pytest.mark.parametrize("given", [
    "https://hub.example.org", "https://hub.example.org/", "https://hub.example.org/hub",
    "https://hub.example.org/hub/", "https://hub.example.org/hub/api", "https://hub.example.org/hub/api/",
])
def test_any_form_of_the_hub_address_gives_its_api(given):
    assert api_url(given) == "https://hub.example.org/hub/api"


def arguments(*argv):
    parser = argparse.ArgumentParser()
    add_hub_arguments(parser)
    return parser.parse_args(argv)


def test_options_win_over_jupyterhubs_variables():
    env = {"JUPYTERHUB_API_URL": "http://hub.example/hub/api", "JUPYTERHUB_API_TOKEN": "from-env"}
    assert HubClient.from_arguments(arguments(), env) == HubClient("http://hub.example/hub/api", "from-env")
    client = HubClient.from_arguments(arguments("--hub-url", "http://other", "--token", "t"), env)
    assert (client.url, client.token) == ("http://other/hub/api", "t")


def test_no_hub_or_no_token_says_how_to_give_them():
    with pytest.raises(HubAPIError, match="--hub-url and --token, or JUPYTERHUB_API_URL"):
        HubClient.from_arguments(arguments("--hub-url", "http://hub"), {})


class Answers(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers["Authorization"] != "token good":
            body, status = {"status": 403, "message": "Action is not authorized with current scopes"}, 403
        else:
            body, status = {"name": "alice", "path": self.path}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_address():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_answers_are_json_and_refusals_carry_the_hubs_message(hub_address):
    assert HubClient(api_url(hub_address), "good").get("/users/alice") == {
        "name": "alice", "path": "/hub/api/users/alice"}
    with pytest.raises(HubAPIError, match="403 Action is not authorized") as refused:
        HubClient(api_url(hub_address), "bad").get("/users/alice")
    assert refused.value.status == 403


def test_an_unreachable_hub_is_named():
    with socket.socket() as closed:  # a port that was free a moment ago: nobody listens
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hub/api"
    with pytest.raises(HubAPIError, match=f"cannot reach the hub at {url}"):
        HubClient(url, "t").get("/")
