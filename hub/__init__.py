"""Hub-side pieces of gpuhub: start-up steps for the hub's config, services, UI."""
