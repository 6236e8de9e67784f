"""gunicorn's settings (`gunicorn -c config/gunicorn.py config.wsgi:application`):
the access log without secrets.

The access log shows the path with its secret segments masked
(core.redaction.path_mask: voucher codes, card numbers), never the query
string, the referrer, a basic-auth user or any request header; it ends with
the request id the application answered (X-Request-ID), the key to its
structured lines (docs/operations.md, "Logs").
"""

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
