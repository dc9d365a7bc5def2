"""The SSH entrance: ``ssh -p 8022 alice@hub`` into alice's own server, a
hub-managed service (README.md in this folder)."""

SERVICE_NAME = "gpuhub-ssh"
