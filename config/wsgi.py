import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
application = get_wsgi_application()

# The tail of the till's calls: the app's ~190,000 long-lived objects
# (Django, DRF, the URL conf and every view it imports, loaded here rather
# than by the first request) made each full collection of a worker scan
# them all, 170 ms on the bench's busy machine. Frozen, collections scan
# only what requests create; a larger first generation collects a few
# times per hundred requests rather than several times per request.
get_resolver().url_patterns  # noqa: B018 - imports the URL conf and its views now
gc.collect()
gc.freeze()
gc.set_threshold(5000, 20, 100)
