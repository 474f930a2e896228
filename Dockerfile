# syntax=docker/dockerfile:1
# The emitter as a container: `docker build -t telegram-emitter:0.1.0 .`
#
# Two stages: `build` turns the project and its pinned dependencies (pyproject.toml) into wheels; the final
# stage installs those wheels and nothing else, runs as UID 10001 and writes only to /tmp and /data, so it
# works with a read-only root file system.

# Both stages use the same pinned base (keep the two FROM lines in step; scanners read literal tags only).
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# emitter/schemas is a symlink to ../schemas: both must be in the build context for the wheel to carry the
# Avro schema the emitter loads at run time.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY emitter ./emitter
# Every dependency ships a wheel for CPython 3.11 on glibc, so the build needs no compiler either.
RUN pip wheel --wheel-dir /wheels . \
    && python -c "import sys, zipfile, glob; names = zipfile.ZipFile(glob.glob('/wheels/telegram_emitter-*.whl')[0]).namelist(); sys.exit('emitter/schemas/telegram_message.avsc' not in names)"

FROM python:3.11.14-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="telegram-emitter" \
      org.opencontainers.image.description="Turns Telegram groups into an exactly-once Avro stream in Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# Installs exactly the wheels built above (--no-index: nothing is resolved again); the wheels are mounted,
# not copied, so they add no layer. Byte code is compiled here because the root file system is read-only
# at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    pip install --no-index --find-links=/wheels --compile /wheels/*.whl \
    && groupadd --system --gid 10001 emitter \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin emitter \
    && mkdir -p /data \
    && chown 10001:10001 /data

# HOME is /tmp: nothing else is writable. Defaults suited to a container; the environment wins over an
# INI file, so set these variables (not INI keys) to change them.
ENV HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EMITTER_EMITTER__DATA_DIR=/data \
    EMITTER_EMITTER__LOG_FORMAT=json \
    EMITTER_TELEMETRY__HTTP_HOST=0.0.0.0 \
    EMITTER_TELEMETRY__HTTP_PORT=9464

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9464

# No curl in the slim image: the interpreter that is already there asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['EMITTER_TELEMETRY__HTTP_PORT'], timeout=4)"]

ENTRYPOINT ["emitter"]
CMD ["run"]
