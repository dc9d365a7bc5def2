# gpuhub: `make up` runs a hub on this host, `make test` runs every test.
# Both install what they need (as root on Debian/Ubuntu) or say what is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
# The tests' private Docker engine (tests/rig/engine.sh); `make up` uses the host's.
TEST_DOCKER_HOST := unix:///run/gpuhub-test/docker.sock
# JupyterHub 6 (test-jh6): its own venv, and the tests run again on it
VENV_JH6 := .venv-jh6
JH6_TESTS := tests/integration/test_accounts.py tests/integration/test_spawn.py tests/integration/test_options.py tests/cohort/test_cohort_import.py

.PHONY: up test test-jh6 unit integration ansible-test images test-images engine bench clean help

help:
	@echo "make up     run the hub on this host (jupyterhub -f config/jupyterhub_config.py)"
	@echo "make test   install test needs and run every test (JupyterHub 5 and 6, Ansible)"
	@echo "make ansible-test  lint the Ansible roles, and converge them on a fresh Debian target"
	@echo "make test-jh6  login, spawn and options tests against JupyterHub 6 (.venv-jh6)"
	@echo "make bench  spawn and burst benchmarks: GPUDockerSpawner vs stock DockerSpawner"

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq nodejs npm; } \
		|| { echo "npm is missing: install Node.js and npm"; exit 1; }
	npm ci --no-audit --no-fund --silent
	touch $@

# ---- make up -------------------------------------------------------------
# The PyTorch notebook image (images/README.md): on the official PyTorch-CUDA
# base when it can be pulled, else on a locally made CPU base (it says which).
images: $(VENV)/.installed
	config/host/ensure-docker.sh
	mkdir -p .cache
	$(VENV)/bin/gpuhub images build --tag-file .cache/notebook-image

up: $(VENV)/.installed node_modules/.installed images
	GPUHUB_IMAGE=$${GPUHUB_IMAGE:-$$(cat .cache/notebook-image)} \
		$(VENV)/bin/jupyterhub -f config/jupyterhub_config.py

# ---- make test -----------------------------------------------------------
# Ansible and its linters (ansible/requirements.txt) for tests/ansible; the
# converge test's target is made with debootstrap.
VENV_ANSIBLE := .venv-ansible
$(VENV_ANSIBLE)/.installed: ansible/requirements.txt
	$(PYTHON) -m venv $(VENV_ANSIBLE)
	$(VENV_ANSIBLE)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_ANSIBLE)/bin/python -m pip install --quiet -r ansible/requirements.txt
	touch $@

/usr/sbin/debootstrap:
	[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		|| { echo "debootstrap is missing: install it (Debian/Ubuntu: apt-get install debootstrap)"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null

ansible-test: $(VENV)/.installed $(VENV_ANSIBLE)/.installed test-images /usr/sbin/debootstrap
	$(PY) -m pytest tests/ansible

engine:
	tests/rig/engine.sh start

# Browser tests drive Debian's Chromium with Playwright (no browser download).
/usr/bin/chromium:
	[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		|| { echo "chromium is missing: install it (Debian/Ubuntu: apt-get install chromium)"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# HUB_PY: the Python of the hub under test (its jupyterhub version tags the image).
HUB_PY ?= $(PY)
test-images: $(VENV)/.installed engine
	DOCKER_HOST=$(TEST_DOCKER_HOST) HUB_PYTHON=$(HUB_PY) $(VENV)/bin/gpuhub images build-test

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit tests/images -m "not image_build"

integration: $(VENV)/.installed node_modules/.installed test-images /usr/bin/chromium
	$(PY) -m pytest tests/integration

# Everything, in two lanes at once (most tests wait on containers, hubs and
# timeouts, not on the CPU): the hub tests (tests/integration), then the login,
# spawn and options tests again on JupyterHub 6, in one; unit, image, Ansible,
# cohort and SSH/IDE tests in the other (it also builds the image line, cold).
# Each run names its containers with its own GPUHUB_TEST_PREFIX, so none
# removes another's. A lane's output is printed when it ends.
test: $(VENV)/.installed $(VENV_ANSIBLE)/.installed $(VENV_JH6)/.installed node_modules/.installed test-images /usr/bin/chromium /usr/sbin/debootstrap
	$(MAKE) test-images HUB_PY=$(VENV_JH6)/bin/python
	$(MAKE) -j2 --output-sync=target test-lane-hubs test-lane-rest

.PHONY: test-lane-hubs test-lane-rest
test-lane-hubs:
	$(PY) -m pytest tests/integration
	GPUHUB_TEST_PREFIX=gpuhubjh6 $(VENV_JH6)/bin/python -m pytest $(JH6_TESTS)
test-lane-rest:
	GPUHUB_TEST_PREFIX=gpuhubimg $(PY) -m pytest tests/unit tests/images tests/ansible tests/cohort tests/ssh

# JupyterHub 6: a second venv from constraints-jh6.txt, its own test notebook
# image (gpuhub/test-notebook:<6.x>), and the hub's login, spawn and options tests.

$(VENV_JH6)/.installed: pyproject.toml constraints-jh6.txt
	$(PYTHON) -m venv $(VENV_JH6)
	$(VENV_JH6)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_JH6)/bin/python -m pip install --quiet -c constraints-jh6.txt -e '.[test]'
	touch $@

test-jh6: $(VENV_JH6)/.installed node_modules/.installed
	$(MAKE) test-images HUB_PY=$(VENV_JH6)/bin/python
	$(VENV_JH6)/bin/python -m pytest $(JH6_TESTS)

bench: $(VENV)/.installed node_modules/.installed test-images
	PYTHONPATH=$(CURDIR) DOCKER_HOST=$(TEST_DOCKER_HOST) $(PY) benchmarks/spawn.py
	PYTHONPATH=$(CURDIR) DOCKER_HOST=$(TEST_DOCKER_HOST) $(PY) benchmarks/burst.py

clean:
	rm -rf $(VENV) $(VENV_JH6) $(VENV_ANSIBLE) node_modules .pytest_cache
