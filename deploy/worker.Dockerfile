# The GPU worker image: PyTorch's CUDA runtime image, then the package with the kanitts2 extra.
# The torch that came with the base image is pinned while installing, so pip never swaps it for
# another build (a CPU wheel, or a CUDA build that does not match the image's libraries).
FROM pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/hf

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
COPY worker ./worker
# Everything else at the exact versions CI tested (constraints.txt, which leaves torch to the image).
RUN python -c "import torch; print(f'torch=={torch.__version__}')" > /tmp/torch-constraint.txt \
    && pip install --constraint /tmp/torch-constraint.txt --constraint constraints.txt ".[kanitts2]" \
    && useradd --system --uid 10001 --home-dir /app narrate \
    && mkdir -p /models/hf && chown -R narrate /models

USER narrate
VOLUME ["/models"]
EXPOSE 9101
# A thread per unit (NARRATE_WORKER_UNITS, compose passes it as --concurrency): one engine per process.
CMD ["celery", "-A", "worker.celery_app:app", "worker", "-Q", "narrate,narrate-voices", "--pool", "threads", "--concurrency", "16", "-l", "INFO"]
