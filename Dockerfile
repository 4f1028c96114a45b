# One image for every orderflow process: the API, the Celery workers, the outbox relay,
# beat, Flower and the `orderflow` command. docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORDERFLOW_LOG_JSON=true

WORKDIR /app
RUN useradd --create-home --uid 10001 orderflow \
    && mkdir -p /var/lib/orderflow \
    && chown orderflow /var/lib/orderflow

COPY pyproject.toml README.md ./
COPY orderflow ./orderflow
COPY api ./api
COPY tasks ./tasks
COPY workers ./workers
COPY celeryconfig.py ./
RUN pip install .

USER orderflow
ENV ORDERFLOW_STATE_DIR=/var/lib/orderflow
# API, Flower, a worker's metrics endpoint.
EXPOSE 8000 5555 9808
CMD ["orderflow", "--help"]
