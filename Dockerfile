# grid worker image (docker-compose.yml). Wheels exist for every dependency on
# linux/amd64 and arm64, so no compiler is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY grid ./grid
COPY geodata ./geodata
COPY rules ./rules
COPY streams ./streams
RUN pip install . && useradd --create-home --uid 10001 grid \
    && mkdir -p /var/lib/grid && chown grid /var/lib/grid

USER grid
EXPOSE 6066
CMD ["grid", "worker"]
