"""Gunicorn with Uvicorn workers; every worker is a full, stateless copy of the app.

`gunicorn -c deploy/gunicorn.conf.py xintu.main:app`. Each worker runs the app's start-up:
it migrates under the database lock (with XINTU_MIGRATE_ON_START=false it expects the
migrate job to have done it, and /health says so until then), so workers and replicas
starting together are safe.
"""

import os

bind = f"{os.environ.get('XINTU_HOST', '0.0.0.0')}:{os.environ.get('XINTU_PORT', '8000')}"
worker_class = "uvicorn_worker.UvicornWorker"
# Not cpu_count(): in a container it reports the host's cores, not the pod's CPU limit.
workers = int(os.environ.get("XINTU_WORKERS", "2"))
# A request can wait XINTU_REMOTE_TIMEOUT_S (15) per provider: room for two and the local model.
timeout = 60
# The drain time: on SIGTERM, workers finish in-flight requests for up to this long.
# Kubernetes' terminationGracePeriodSeconds and compose's stop_grace_period must exceed it.
graceful_timeout = int(os.environ.get("XINTU_DRAIN_S", "30"))
keepalive = 5
# Worker heartbeats on tmpfs: the container's root may be read-only or slow overlayfs.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Uvicorn must not rewrite the peer address from proxy headers: the app reads
# X-Forwarded-For itself, only from XINTU_TRUSTED_PROXIES (xintu/clientip.py).
forwarded_allow_ips = ""
accesslog = None
errorlog = "-"
