# podero-exporter: a slim, non-root image.
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t podero-exporter:0.1.0 .          (at the release tag; README.md, "Releasing")
#   docker run -p 10042:10042 podero-exporter --demo
#   docker run -p 10042:10042 -v $PWD/config.yaml:/etc/podero-exporter/config.yaml:ro \
#     -v $PWD/secret:/run/secrets/podero_client_secret:ro -e PODERO_CLIENT_ID=... podero-exporter
FROM python:3.11-slim

# The source revision and the release, shown in podero_exporter_build_info{revision,version}.
# The build context has no .git, so setuptools-scm takes the version from VERSION.
ARG REVISION=unknown
ARG VERSION=0.0.0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PODERO_EXPORTER_REVISION=$REVISION
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter
RUN SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PODERO_EXPORTER=$VERSION pip install . \
    && useradd --system --uid 10042 --no-create-home podero \
    && mkdir -p /etc/podero-exporter

USER 10042
EXPOSE 10042
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10042/-/healthy', timeout=4)"]
ENTRYPOINT ["podero-exporter"]
CMD ["--config.file=/etc/podero-exporter/config.yaml", "--web.listen-address=:10042"]
