# PF-EPO controller daemon. Untested here: no Docker engine runs on the development machines.
# The daemon itself needs no OVS or Mininet inside the container: switches connect to it over TCP.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OSKEN_HUB_TYPE=native
WORKDIR /opt/pfepo
COPY pyproject.toml README.md ./
COPY pfepo ./pfepo
COPY mininet_topologies ./mininet_topologies
COPY configs ./configs
COPY policies ./policies
RUN pip install --no-cache-dir '.[kubernetes]' && useradd --system --home /var/lib/pfepo pfepo \
    && mkdir -p /var/lib/pfepo && chown pfepo /var/lib/pfepo
USER pfepo
WORKDIR /var/lib/pfepo
# 6653: OpenFlow (switches connect here); 8080: REST API and /metrics.
# Set openflow.listen_host and rest.host to 0.0.0.0 in the mounted config to reach them from outside.
EXPOSE 6653 8080
ENTRYPOINT ["pfepo"]
CMD ["run", "--config", "/etc/pfepo/pfepo.yaml"]
