"""`podman kube play` of the Kubernetes api and worker Deployments on this machine.

    python deploy/kube_play.py          (make test-deploy runs it)

Renders deploy/k8s/base with kustomize, adapts it to one podman host (host network so the
pods reach this machine's MariaDB and Redis, the secret values inline since podman reads no
Secret objects, one replica each), runs `xintu migrate` from the image as the migrate Job
would, plays the manifests, then classifies and edits through the api pod
(deploy/smoke.py). Uses XINTU_TEST_MYSQL_URL and XINTU_TEST_REDIS_URL; tears down after.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/xintu:latest"
DATABASE = "xintu_kube_play"


def run(*args: str, check: bool = True, capture: bool = False) -> str:
    result = subprocess.run(args, check=False, text=True, capture_output=capture)
    if check and result.returncode != 0:
        # A captured command's own words are the only clue to why it failed: show them.
        sys.stderr.write(result.stderr or "")
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return result.stdout if capture else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def secret_values(database_url: str, redis_url: str, port: int) -> dict[str, str]:
    """What the overlay's xintu-secrets holds, for this machine."""
    return {
        "XINTU_DATABASE_URL": database_url,
        "XINTU_REDIS_URL": redis_url,
        "XINTU_JWT_SECRET": secrets.token_urlsafe(48),
        "XINTU_DATA_KEY": secrets.token_urlsafe(32),
        "XINTU_HOST": "127.0.0.1",
        "XINTU_PORT": str(port),
        # No LLM here: the offline models answer.
        "XINTU_INFERENCE_MODE": "local_only",
        "XINTU_EDIT_PROVIDERS": "",
    }


def adapt(documents: list[dict[str, Any]], values: dict[str, str]) -> list[dict[str, Any]]:
    kept = []
    config: dict[str, str] = {}
    for document in documents:
        if document["kind"] == "ConfigMap":
            config = document["data"]
    for document in documents:
        if document["kind"] not in ("Deployment", "PersistentVolumeClaim"):
            continue
        if document["kind"] == "Deployment":
            document["spec"]["replicas"] = 1
            pod = document["spec"]["template"]["spec"]
            pod["hostNetwork"] = True
            pod["volumes"] = [v for v in pod["volumes"] if "secret" not in v]
            for container in pod["containers"]:
                container["image"] = IMAGE
                container.pop("envFrom")
                env = {**config, **values}
                container["env"] = [{"name": k, "value": v} for k, v in env.items()]
                container["volumeMounts"] = [
                    m for m in container["volumeMounts"] if m["name"] != "wechatpay"
                ]
                container.pop("ports", None)
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if probe in container:
                        container[probe]["httpGet"]["port"] = int(values["XINTU_PORT"])
        kept.append(document)
    return kept


def main() -> None:
    mysql = make_url(os.environ.get("XINTU_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1/x"))
    redis = os.environ.get("XINTU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    database_url = mysql.set(database=DATABASE).render_as_string(hide_password=False)
    redis_url = redis.rsplit("/", 1)[0] + "/13"
    port = free_port()
    values = secret_values(database_url, redis_url, port)

    mysql_args = ["mysql", "-h", mysql.host or "127.0.0.1", "-P", str(mysql.port or 3306)]
    mysql_args += ["-u", mysql.username or "root"]
    if mysql.password:
        mysql_args.append(f"-p{mysql.password}")
    run(*mysql_args, "-e", f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE}")
    redis_host, redis_port = redis.split("//", 1)[1].split("/", 1)[0].split(":")
    run("redis-cli", "-h", redis_host, "-p", redis_port, "-n", "13", "flushdb")

    rendered = run("kubectl", "kustomize", str(ROOT / "deploy/k8s/base"), capture=True)
    documents = adapt(list(yaml.safe_load_all(rendered)), values)
    with tempfile.TemporaryDirectory() as directory:
        manifest = Path(directory) / "xintu.yaml"
        manifest.write_text(yaml.safe_dump_all(documents))
        run("podman", "kube", "down", str(manifest), check=False, capture=True)
        run("podman", "volume", "rm", "-f", "xintu-data", check=False, capture=True)
        # The migrate Job: the same image and command, once.
        env_args = [arg for key, value in values.items() for arg in ("-e", f"{key}={value}")]
        run("podman", "run", "--rm", "--network", "host", *env_args, IMAGE, "xintu", "migrate")
        run("podman", "kube", "play", str(manifest), capture=True)
        try:
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "deploy/smoke.py"),
                    f"http://127.0.0.1:{port}",
                    "--edit",
                    "--timeout",
                    "180",
                ],
                check=True,
            )
            pods = run("podman", "pod", "ps", "--format", "{{.Name}} {{.Status}}", capture=True)
            print("pods:", " | ".join(pods.split("\n")).strip(" |"))  # noqa: T201 - a script reports by printing
        except subprocess.CalledProcessError:
            for name in ("xintu-api-pod-api", "xintu-worker-pod-worker"):
                subprocess.run(["podman", "logs", "--tail", "40", name], check=False)
            raise
        finally:
            run("podman", "kube", "down", str(manifest), check=False, capture=True)
            run("podman", "volume", "rm", "-f", "xintu-data", check=False, capture=True)
            run(*mysql_args, "-e", f"DROP DATABASE IF EXISTS {DATABASE}", check=False)


if __name__ == "__main__":
    main()
