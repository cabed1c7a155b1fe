# syntax=docker/dockerfile:1
# One image for both processes: `drbot serve` (the Slack bot, the default) and `drbot worker`.

FROM python:3.11-slim AS builder

# Same uv as the lock file was made with, so `--frozen` reads it the same way.
RUN pip install --no-cache-dir uv==0.13.9

# The venv uses the base image's interpreter (identical in the runtime stage) and ships
# compiled bytecode, because the runtime root filesystem is read-only.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock changes, not on every code edit.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then drbot itself, installed into the venv as a regular (non-editable) package so the runtime
# stage needs the venv only, not the source tree.
COPY drbot ./drbot
COPY bot ./bot
COPY workers ./workers
COPY procedures ./procedures
COPY sim ./sim
RUN uv sync --frozen --no-dev --no-editable


FROM python:3.11-slim AS runtime

# openssh-client: ssh-keygen / ssh-keyscan for preparing and checking known_hosts from a shell in the pod.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 drbot \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin drbot

COPY --from=builder /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp

WORKDIR /tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 3000
ENTRYPOINT ["drbot"]
# Listen on every interface: the bot's loopback default is unreachable from outside a container.
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]
