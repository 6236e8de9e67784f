# The production image: gunicorn serving config.wsgi with production settings.
# (Docker cannot run on the development machines of this project; this file
# and docker-compose.yml are kept correct by reading. See README.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    PROMETHEUS_MULTIPROC_DIR=/tmp/lojal-metrics
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings, not secrets: a throwaway key for the build.
RUN SECRET_KEY=build-only ALLOWED_HOSTS=localhost DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput \
 && useradd --create-home --uid 10001 lojal \
 && install -d -o lojal /tmp/lojal-metrics
USER lojal
EXPOSE 8000
# Liveness only (no I/O): a database or Redis outage must not get a healthy
# process restarted; load balancers poll /health/ready (docs/operations.md).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=3).status == 200 else 1)"
CMD ["gunicorn", "config.wsgi:application", "-c", "config/gunicorn.py", \
     "--bind", "0.0.0.0:8000", "--workers", "4"]
