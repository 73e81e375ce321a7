# syntax=docker/dockerfile:1
# wardtwin service image: multi-stage (build a venv, copy only it), runs as a non-root user, with a healthcheck.
#   docker build -t wardtwin .
#   docker run -p 8000:8000 -v wardtwin-data:/data wardtwin                       # embedded SQLite store
#   docker run -e WARDTWIN_INFLUX_URL=http://influxdb:8086 ... wardtwin             # InfluxDB store (+ local spool)
#   docker exec CONTAINER wardtwin keys create --role admin --name "ops"             # API keys (hashes in /data)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# dependencies first (a layer that survives code edits), then the package itself
COPY pyproject.toml README.md* ./
RUN /opt/venv/bin/pip install --upgrade pip setuptools wheel \
 && /opt/venv/bin/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY app ./app
COPY models ./models
COPY simulator ./simulator
RUN /opt/venv/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 wardtwin \
 && useradd --system --uid 10001 --gid wardtwin --home-dir /home/wardtwin --create-home --shell /usr/sbin/nologin wardtwin \
 && mkdir -p /data && chown wardtwin:wardtwin /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WARDTWIN_DATA_DIR=/data
USER wardtwin:wardtwin
WORKDIR /home/wardtwin
# SQLite store, alert store and the InfluxDB spool (WARDTWIN_DATA_DIR/influx-spool.db) live here: keep it a volume
VOLUME ["/data"]
EXPOSE 8000
# Liveness: /healthz answers 200 while the process serves. It does not fail when InfluxDB is down — readings
# are then spooled to /data and the body reports {"store": {"ok": false, "backlog": n}}.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
CMD ["wardtwin", "serve", "--host", "0.0.0.0", "--port", "8000"]
