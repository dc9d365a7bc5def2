"""Cohorts: a class or a hackathon as data (hub/cohort/README.md)."""
