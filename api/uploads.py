"""Receiving an uploaded file (district, address and member imports) without trusting the
client: the body is streamed to disk under the upload limit, after the route's role check."""

import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.errors import AppError, Unprocessable
from api.settings import Settings

__all__ = ["receive_upload", "upload_body"]

_MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file itself


def upload_body(description: str, media_type: str) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its multipart upload itself."""
    schema = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
            "description": f"the {media_type} file in the form field `file`",
        }
    }


async def receive_upload(request: Request, directory: Path, settings: Settings) -> tuple[Path, str]:
    """Stream the multipart field ``file`` into ``directory``; return its path and name.

    The body is counted as it arrives and reading stops at the limit: a client that lies
    about its size, or sends none, gets the same 413 as one that declares too much.
    """
    max_bytes = settings.import_max_upload_mb * 2**20
    too_large = AppError(
        f"file: larger than the limit of {settings.import_max_upload_mb} MB "
        "(KNACKA_IMPORT_MAX_UPLOAD_MB)",
        413,
    )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Unprocessable("file: send the file as multipart/form-data in the form field 'file'")
    declared = request.headers.get("content-length", "")
    limit = max_bytes + _MULTIPART_OVERHEAD
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    over = False

    async def capped() -> AsyncGenerator[bytes, None]:
        nonlocal over
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                over = True
                return
            yield chunk

    parser = MultiPartParser(request.headers, capped(), max_files=1, max_fields=0)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if over:
            raise too_large from None
        raise Unprocessable(f"file: the upload is not valid multipart/form-data ({exc})") from None
    try:
        if over:
            raise too_large
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("file: no file in the form field 'file'")
        if upload.size is not None and upload.size > max_bytes:
            raise too_large
        name = upload.filename or ""
        # The client's file name, made safe, so that messages name the file they sent.
        stem = re.sub(r"[^\w.-]", "_", Path(name).stem)[:100].lstrip(".") or "upload"
        suffix = re.sub(r"[^\w.]", "_", Path(name).suffix.lower())[:20]
        target = directory / f"{stem}{suffix}"
        with target.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                out.write(chunk)
        return target, name
    finally:
        await form.close()
