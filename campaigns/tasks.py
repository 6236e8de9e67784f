"""The campaigns' job's Celery task. The job declares its own (core.jobs.job):
importing the module that declares it registers it with the worker, whose
autodiscovery imports this module (config/celery.py)."""

from campaigns import experiments  # noqa: F401
