"""jupyter-server-proxy's entry for VS Code in the browser (code-server), installed into
the notebook server's Python by the IDE layer (images/ide/Dockerfile) as the small
package gpuhub-vscode-proxy, found through the `jupyter_serverproxy_servers` entry point
(a config file would share its name with whatever else configures the server).

/user/<name>/vscode/ starts /opt/code-server/bin/gpuhub-code-server on a free port;
jupyter-server-proxy serves it only to users the notebook server lets in.
"""


def setup_code_server() -> dict:
    return {
        "command": ["/opt/code-server/bin/gpuhub-code-server", "{port}"],
        # A cold first start on a busy host takes a few seconds (the default is 5).
        "timeout": 60,
        "new_browser_tab": True,
        "launcher_entry": {
            "enabled": True,
            "title": "VS Code",
            "icon_path": "/opt/code-server/vscode.svg",
            "category": "Notebook",
        },
    }
