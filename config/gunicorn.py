"""gunicorn's settings (`gunicorn -c config/gunicorn.py config.wsgi:application`):
the access log without secrets.

The access log shows the path with its secret segments masked
(core.redaction.path_mask: voucher codes, card numbers), never the query
string, the referrer, a basic-auth user or any request header; it ends with
the request id the application answered (X-Request-ID), the key to its
structured lines (docs/operations.md, "Logs"). Under LOG_FORMAT=json
(the production settings' default) gunicorn's own lines, the access line
included, are JSON objects too, through the application's formatter.
"""

import os
from typing import Any

from gunicorn.glogging import Logger

from core.redaction import path_mask


class MaskedAccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        path = path_mask(environ.get("PATH_INFO") or "")
        # Headers ({name}i, {name}o) and the environ ({name}e) may carry keys,
        # cookies and query strings: only the response's request id stays.
        safe = {name: value for name, value in atoms.items() if not name.startswith("{")}
        safe.update(
            U=path,
            r=f"{environ.get('REQUEST_METHOD', '-')} {path} {environ.get('SERVER_PROTOCOL', '-')}",
            q="-",
            u="-",
            f="-",
        )
        headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        for name, value in headers or ():
            if name.lower() == "x-request-id":
                safe["{x-request-id}o"] = value
        return safe


logger_class = MaskedAccessLogger
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss %({x-request-id}o)s'


def _log_format() -> str:
    production = os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production")
    return os.environ.get("LOG_FORMAT", "json" if production else "console")


if _log_format() == "json":
    _to_stdout = {"handlers": ["stdout"], "level": "INFO", "propagate": False}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "core.logs.json_formatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": "INFO"},
        "loggers": {"gunicorn.error": _to_stdout, "gunicorn.access": _to_stdout},
    }
