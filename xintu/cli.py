"""The ``xintu`` command line."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

from xintu.config import get_settings
from xintu.inference.local.cli import app as models_app

app = typer.Typer(help="XinTu Album backend", no_args_is_help=True)
cache_app = typer.Typer(help="The global classification cache", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
app.add_typer(models_app, name="models")
billing_app = typer.Typer(help="Orders and payments", no_args_is_help=True)
app.add_typer(billing_app, name="billing")
admin_app = typer.Typer(help="Administrator accounts", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


@app.command()
def migrate() -> None:
    """Bring the database to the newest schema (once, under a database lock)."""
    from xintu.migrations import prepare_schema

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Waits for a database that does not accept connections yet (started beside it).
    asyncio.run(prepare_schema(settings.database_url, migrate=True, wait_s=settings.schema_wait_s))
    typer.echo("database is at the newest schema")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="default XINTU_HOST"),
    port: int | None = typer.Option(None, help="default XINTU_PORT"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Migrate the database, then serve the API."""
    import uvicorn

    migrate()
    settings = get_settings()
    uvicorn.run(
        "xintu.main:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        # Client addresses come from xintu.clientip (XINTU_TRUSTED_PROXIES), never from
        # uvicorn's rewrite of the peer, which would hide the peer that must be checked.
        proxy_headers=False,
        log_config=None,
    )


@app.command()
def worker(
    concurrency: int | None = typer.Option(None, help="default XINTU_EDIT_WORKER_CONCURRENCY"),
) -> None:
    """Run edit tasks from the Redis queue (needs XINTU_REDIS_URL); any number per host."""
    import signal

    from xintu.edit.tasks import run_worker
    from xintu.logging import configure_logging
    from xintu.migrations import prepare_schema

    settings = get_settings()
    if concurrency is not None:
        settings.edit_worker_concurrency = concurrency
    if not settings.redis_url:
        typer.echo("XINTU_REDIS_URL is not set: without Redis, edits run inside `xintu serve`")
        raise typer.Exit(2)
    settings.ensure_secrets()
    configure_logging(
        settings.log_level,
        settings.log_json,
        settings.log_file,
        settings.log_rotation,
        settings.log_retention,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await prepare_schema(
            settings.database_url,
            migrate=settings.migrate_on_start,
            wait_s=settings.schema_wait_s,
        )
        await run_worker(settings, stop)

    asyncio.run(run())


@app.command()
def classify(
    paths: list[Path] = typer.Argument(..., help="photo files or folders (walked recursively)"),
    server: str = typer.Option(
        os.environ.get("XINTU_SERVER", "http://127.0.0.1:8000"),
        help="the XinTu service (env XINTU_SERVER)",
    ),
    local: bool = typer.Option(False, "--local", help="classify in this process, no server"),
    organize_dir: Path | None = typer.Option(
        None, "--organize", help="sort the files into per-category folders here"
    ),
    copy: bool = typer.Option(False, "--copy", help="with --organize: copy (the default)"),
    link: bool = typer.Option(False, "--link", help="with --organize: hard-link"),
    move: bool = typer.Option(False, "--move", help="with --organize: move, after a verified copy"),
    json_path: Path | None = typer.Option(None, "--json", help="write every result as JSON"),
    csv_path: Path | None = typer.Option(None, "--csv", help="write every result as CSV"),
    state: Path | None = typer.Option(
        None, help="resume file (default ~/.cache/xintu/classify-<server>.jsonl)"
    ),
    fresh: bool = typer.Option(False, "--fresh", help="forget earlier runs' results"),
    concurrency: int = typer.Option(4, min=1, max=64, help="upload requests in flight"),
    workers: int = typer.Option(
        max(1, os.cpu_count() or 1), min=1, help="processes that compress photos"
    ),
    max_uploads: int | None = typer.Option(
        None, min=0, help="upload at most this many photos now; run again for the rest"
    ),
    user_id: str | None = typer.Option(None, help="sent as X-User-ID (statistics label)"),
    token: str | None = typer.Option(
        os.environ.get("XINTU_TOKEN"), help="a user JWT (env XINTU_TOKEN)", show_default=False
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or tables"),
) -> None:
    """Classify photo folders: hash, ask the cache, upload only what it does not know."""
    from rich.console import Console

    from xintu.clients.folder import (
        ClientError,
        Options,
        OrganizeMode,
        classify_paths,
        organize,
        print_summary,
        write_csv,
        write_json,
    )

    if sum((copy, link, move)) > 1:
        raise typer.BadParameter("choose one of --copy, --link, --move")
    if (copy or link or move) and organize_dir is None:
        raise typer.BadParameter("--copy/--link/--move need --organize DIR")
    mode = OrganizeMode.move if move else OrganizeMode.link if link else OrganizeMode.copy
    console = Console(stderr=True)
    options = Options(
        server=server,
        local=local,
        state_path=state,
        fresh=fresh,
        concurrency=concurrency,
        workers=workers,
        max_uploads=max_uploads,
        user_id=user_id,
        token=token,
        exclude=[organize_dir] if organize_dir else [],
    )
    try:
        report = asyncio.run(classify_paths(paths, options, None if quiet else console))
        if organize_dir is not None:
            placed = organize(report, organize_dir, mode)
            if not quiet:
                console.print(f"{len(placed)} files {mode.value} into {organize_dir}")
    except ClientError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if json_path is not None:
        write_json(report, json_path)
    if csv_path is not None:
        write_csv(report, csv_path)
    if not quiet:
        print_summary(report, Console())
    if report.incomplete:
        raise typer.Exit(3)


@cache_app.command("purge")
def cache_purge(
    model: str = typer.Option(..., help="delete every entry this model produced"),
) -> None:
    """Delete the cache entries of one model (e.g. after a model was found to be wrong)."""
    from redis.asyncio import Redis

    from xintu.classify.cache import ClassificationCache
    from xintu.db import Database
    from xintu.redis_guard import RedisGuard

    settings = get_settings()

    async def run() -> int:
        database = Database(settings.database_url)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        try:
            cache = ClassificationCache(
                database,
                RedisGuard(redis) if redis is not None else None,
                quorum=settings.cache_quorum,
                memory_entries=1,
                memory_ttl_s=1,
                redis_ttl_s=settings.redis_cache_ttl_s,
            )
            return await cache.purge_model(model)
        finally:
            await database.dispose()
            if redis is not None:
                await redis.aclose()

    typer.echo(f"purged {asyncio.run(run())} entries of model {model!r}")


@billing_app.command("close-expired")
def billing_close_expired() -> None:
    """Close pending orders past their expiry (the server also does this periodically)."""
    import aiohttp

    from xintu.billing.service import Billing, close_expired_orders
    from xintu.billing.wechatpay import WechatPay
    from xintu.db import Database

    settings = get_settings()

    async def run() -> int:
        database = Database(settings.database_url)
        async with aiohttp.ClientSession() as http:
            try:
                billing = Billing(
                    settings, database.sessionmaker, WechatPay.from_settings(settings, http)
                )
                return await close_expired_orders(billing, limit=10_000)
            finally:
                await database.dispose()

    typer.echo(f"closed {asyncio.run(run())} expired orders")


@admin_app.command("create")
def admin_create(
    username: str = typer.Option(..., prompt=True, help="the admin's login name"),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="at least 8 characters"
    ),
) -> None:
    """Create an admin, or reset the password (and re-activate) an existing one."""
    from xintu.admin.service import create_or_update_admin
    from xintu.db import Database
    from xintu.errors import AppError

    settings = get_settings()

    async def run() -> bool:
        database = Database(settings.database_url)
        try:
            return await create_or_update_admin(database.engine, username, password)
        finally:
            await database.dispose()

    try:
        created = asyncio.run(run())
    except AppError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(code=2) from error
    typer.echo(f"admin {username!r} {'created' if created else 'updated'}")


@app.command("purge-logs")
def purge_logs(
    days: int | None = typer.Option(
        None, min=1, help="keep this many days (default XINTU_LOG_RETENTION_DAYS)"
    ),
    batch_size: int | None = typer.Option(None, min=1, help="rows per delete batch"),
) -> None:
    """Delete request_log rows older than the retention period, in batches."""
    from xintu.db import Database
    from xintu.stats.retention import purge_request_logs, retention_cutoff

    settings = get_settings()
    keep = days or settings.log_retention_days

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            return await purge_request_logs(
                database.engine,
                retention_cutoff(keep),
                batch_size or settings.log_purge_batch_size,
            )
        finally:
            await database.dispose()

    typer.echo(f"purged {asyncio.run(run())} request_log rows older than {keep} days")


if __name__ == "__main__":
    app()
