"""The ``xintu`` command line."""

from __future__ import annotations

import asyncio

import typer

from xintu.config import get_settings

app = typer.Typer(help="XinTu Album backend", no_args_is_help=True)
cache_app = typer.Typer(help="The global classification cache", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
admin_app = typer.Typer(help="Administrator accounts", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


@app.command()
def migrate() -> None:
    """Bring the database to the newest schema."""
    from xintu.migrations import upgrade_to_head

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
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
        proxy_headers=True,
        log_config=None,
    )


@cache_app.command("purge")
def cache_purge(
    model: str = typer.Option(..., help="delete every entry this model produced"),
) -> None:
    """Delete the cache entries of one model (e.g. after a model was found to be wrong)."""
    from redis.asyncio import Redis

    from xintu.classify.cache import ClassificationCache
    from xintu.db import Database

    settings = get_settings()

    async def run() -> int:
        database = Database(settings.database_url)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        try:
            cache = ClassificationCache(
                database.engine,
                redis,
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
