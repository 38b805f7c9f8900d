"""Gunicorn with Uvicorn workers; every worker is a full, stateless copy of the app."""

import multiprocessing
import os

bind = f"{os.environ.get('XINTU_HOST', '0.0.0.0')}:{os.environ.get('XINTU_PORT', '8000')}"
worker_class = "uvicorn.workers.UvicornWorker"
workers = int(os.environ.get("XINTU_WORKERS", multiprocessing.cpu_count()))
# Remote calls take up to XINTU_REMOTE_TIMEOUT_S per provider; leave room for two.
timeout = 60
graceful_timeout = 30
keepalive = 5
# Uvicorn must not rewrite the peer address from proxy headers: the app reads
# X-Forwarded-For itself, only from XINTU_TRUSTED_PROXIES (xintu/clientip.py).
forwarded_allow_ips = ""
