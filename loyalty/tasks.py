"""The points jobs' Celery tasks. Each job declares its own (core.jobs.job):
importing the modules that declare them registers them with the worker,
whose autodiscovery imports this module (config/celery.py)."""

from loyalty import lifecycle, tiers  # noqa: F401
