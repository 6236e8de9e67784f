"""The insights jobs' Celery tasks: importing the module that declares them
(core.jobs.job) registers them with the worker, whose autodiscovery imports
this module (config/celery.py)."""

from insights import scoring  # noqa: F401
