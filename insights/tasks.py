"""The insights jobs' Celery tasks: importing the modules that declare them
(core.jobs.job) registers them with the worker, whose autodiscovery imports
this module (config/celery.py)."""

from insights import rollups, scoring  # noqa: F401
