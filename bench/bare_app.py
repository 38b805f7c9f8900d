"""The baseline for bench/classify.py: bare FastAPI endpoints doing only the unavoidable work
(answer a GET; parse the same JSON body; receive an upload and hash it)."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response

app = FastAPI()


class HashBody(BaseModel):
    image_hash: str


class HashesBody(BaseModel):
    image_hashes: list[str]


@app.get("/bare")
async def bare() -> Response:
    return Response(b'{"success":true}', media_type="application/json")


@app.post("/bare/json")
async def bare_json(_body: HashBody) -> Response:
    return Response(b'{"success":true}', media_type="application/json")


@app.post("/bare/json-batch")
async def bare_json_batch(_body: HashesBody) -> Response:
    return Response(b'{"success":true}', media_type="application/json")


@app.post("/bare/upload")
async def bare_upload(request: Request) -> Response:
    digest = hashlib.sha256()
    async for chunk in request.stream():
        digest.update(chunk)
    return Response(f'{{"hash":"{digest.hexdigest()}"}}'.encode(), media_type="application/json")
