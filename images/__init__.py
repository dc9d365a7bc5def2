"""gpuhub's notebook images: `gpuhub images build|release|list` (see images/README.md).

Modules: versions (versions.toml, tag names; pure), wheelhouse (host-side wheel
downloads), docker_cli (the docker CLI), build (the build pipeline), verify (checks
run in containers), report (per-build vulnerability report), cli (the command line).
"""
