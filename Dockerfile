# bqhold's image for Prefect work pools (Cloud Run v2 in prefect.yaml; Kubernetes and Docker
# work the same way): flows, tasks and blocks installed with the pinned dependencies of
# pyproject.toml, and the code at /opt/bqhold, the directory prefect.yaml's pull step sets for
# the cloud deployments.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/bqhold/bqhold:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/bqhold/bqhold:0.1.0
#   docker run --rm -v bqhold-data:/data IMAGE python flows/run.py     # the bundled sample, locally
#
# HOLD₂ must outlive the container. In the cloud, keep it in Cloud Storage (--hold-url, or a
# StagingArea block's hold_url: prefect.yaml's cloud-run deployments do): the container's disk is
# only a working copy, rebuilt from the bucket by the next one. Without it, mount a persistent
# volume at /data; /opt/bqhold/bqhold-data links to it, so the CLI's relative defaults land there.
#
# No secrets are baked in: Prefect's API URL and key and Google credentials come from the runtime
# (the Cloud Run worker passes PREFECT_API_URL and the key; Google auth is the job's service
# account or a prefect-gcp GcpCredentials block named in a BigQueryTarget block).

FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PREFECT_LOGGING_EXTRA_LOGGERS=bqhold \
    _RJEM_MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0

WORKDIR /opt/bqhold

# Dependencies first, from pyproject.toml alone, so this layer is rebuilt only when they change.
# BQHOLD_EXTRAS adds optional groups: `--build-arg BQHOLD_EXTRAS=models` for the local_embeddings
# pipeline's model (torch for the CPU, ~1.5 GB more), tagged IMAGE-models (see prefect.yaml).
ARG BQHOLD_EXTRAS=""
COPY pyproject.toml ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ.get('BQHOLD_EXTRAS', '').split(',') if e]; print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" > requirements.lock \
 && pip install -r requirements.lock \
 && rm requirements.lock

# Then the project itself: no dependency resolution (all are installed), and `pip check` proves it.
COPY README.md setup.py ./
COPY flows ./flows
COPY tasks ./tasks
COPY blocks ./blocks
RUN pip install --no-deps . \
 && pip check \
 && rm -rf build bqhold.egg-info

# An unprivileged user (numeric, for Kubernetes' runAsNonRoot) that owns only the data volume.
RUN groupadd --gid 10001 bqhold \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin bqhold \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && ln -s /data /opt/bqhold/bqhold-data

USER 10001:10001
VOLUME ["/data"]

# Workers replace the command (`prefect flow-run execute`); by hand, the local CLI.
CMD ["python", "flows/run.py", "--help"]
