# syntax=docker/dockerfile:1

# Build stage: install the exporter and its dependencies into a virtualenv.
# Every dependency ships manylinux wheels, so no compiler is needed here either.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter

RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir /src

# Final stage: the same base image, so the virtualenv's interpreter links match,
# plus the virtualenv alone: no sources, no build tools.
FROM python:3.11.14-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="dify-license-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Dify Enterprise license expiry" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=build /opt/venv /opt/venv

# A numeric UID, so Kubernetes can check runAsNonRoot without a passwd lookup.
USER 65532:65532

EXPOSE 9877
ENTRYPOINT ["dify-license-exporter"]
# The chart passes its own arguments; these run the image with a registry folder
# mounted at /etc/dify-license-exporter/registry and the files source.
CMD ["serve", "--registry", "/etc/dify-license-exporter/registry/registry.yaml"]
