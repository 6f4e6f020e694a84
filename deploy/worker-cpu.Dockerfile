# The CPU worker image: slim Python and the package with the `cpu` extra (piper and its preview voice on
# ONNX Runtime) and Debian's espeak-ng (the Spanish preview voice), no torch and no CUDA. It runs the
# preview voices anywhere (the Kubernetes base, a laptop) and the webhook sender. About 0.6 GB (an
# estimate: no image was built where this was written).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
COPY worker ./worker
RUN pip install --constraint constraints.txt ".[cpu]" \
    && useradd --system --uid 10001 --home-dir /app narrate

USER narrate
EXPOSE 9101
ENV NARRATE_ENGINE=piper
CMD ["celery", "-A", "worker.celery_app:app", "worker", "-Q", "narrate,narrate-voices", "--pool", "threads", "--concurrency", "4", "-l", "INFO"]
