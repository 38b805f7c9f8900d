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
# Behind Caddy/Nginx: trust X-Forwarded-For from the proxy only.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
