"""The gift and voucher jobs' Celery tasks. Each job declares its own
(core.jobs.job): importing the modules that declare them registers them
with the worker, whose autodiscovery imports this module (config/celery.py)."""

from rewards import gifts, services  # noqa: F401
