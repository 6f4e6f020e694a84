# The API image: slim Python and the package WITHOUT extras. The API never imports torch,
# transformers or NeMo, so none of them is installed and the image starts in about a second.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
COPY api ./api
COPY client ./client
COPY deploy/__init__.py deploy/gunicorn.conf.py deploy/gunicorn_worker.py ./deploy/
# The exact versions CI tested (scripts/update_constraints.sh), not whatever is newest today.
RUN pip install --constraint constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app narrate

USER narrate
EXPOSE 8080
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", "0.0.0.0:8080", "api.wsgi:app"]
