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
# To reach them from outside the container the mounted config binds 0.0.0.0, and then it must also set
# rest.tls (certfile/keyfile) and rest.tokens: the daemon refuses a non-loopback REST address without
# them (exit 2). Set openflow.tls (privkey/cert/ca_certs) so only your switches can connect. Mount
# certificates and token files read-only and publish REST on the host's loopback unless needed:
#   docker run -v /etc/pfepo:/etc/pfepo:ro -v pfepo-state:/var/lib/pfepo -e PFEPO_ADMIN_TOKEN=... \
#              -p 127.0.0.1:8080:8080 -p 6653:6653 pfepo
# See docs/security.md ("Safe deployment").
EXPOSE 6653 8080
ENTRYPOINT ["pfepo"]
CMD ["run", "--config", "/etc/pfepo/pfepo.yaml"]
