"""Zendesk uploads: a file posted to `POST /api/v2/uploads?filename=...` (the raw bytes as the body) answers a token;
a comment that lists the token in `uploads` carries the file as an attachment (Zendesk's Attachment object:
`id`, `file_name`, `content_url`, `content_type`, `size`, ...). The file's bytes are served at its `content_url`
path to the API's credentials, as Zendesk serves attachments of private tickets.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.zendesk.core import ApiError, Endpoint, api_routes, invalid, next_id

MAX_BYTES = 50 * 1024 * 1024  # Zendesk's attachment limit


class Uploads:
    def __init__(self, state: dict[str, Any], subdomain: str):
        self.state, self.subdomain = state, subdomain
        state.setdefault("uploads", {})

    def routes(self, endpoint: Endpoint) -> list[Route]:
        return [
            *api_routes(endpoint, "/uploads", self.upload, ["POST"]),
            Route("/attachments/token/{token}/", endpoint(self.download), methods=["GET"]),
        ]

    async def upload(self, request: Request, actor: dict[str, Any]) -> Response:
        name = request.query_params.get("filename", "").strip()
        if not name:
            raise invalid("filename", "Filename: cannot be blank", "BlankValue")
        content = await request.body()
        if len(content) > MAX_BYTES:
            raise ApiError(413, {"error": "RecordInvalid", "description": "File too large"})
        token = secrets.token_urlsafe(18)
        attachment = {
            "id": next_id(self.state, "comment"),
            "file_name": name,
            "content_url": f"https://{self.subdomain}.zendesk.com/attachments/token/{token}/?name={name}",
            "mapped_content_url": f"https://{self.subdomain}.zendesk.com/attachments/token/{token}/?name={name}",
            "content_type": request.headers.get("content-type") or "application/binary",
            "size": len(content),
            "width": None,
            "height": None,
            "inline": False,
            "deleted": False,
            "malware_access_override": False,
            "malware_scan_result": "malware_not_found",
            "thumbnails": [],
        }
        self.state["uploads"][token] = {"attachment": attachment, "data": base64.b64encode(content).decode()}
        body = {"upload": {"token": token, "expires_at": None, "attachments": [attachment], "attachment": attachment}}
        return JSONResponse(body, status_code=201)

    async def download(self, request: Request, actor: dict[str, Any]) -> Response:
        upload = self.state["uploads"].get(request.path_params["token"])
        if upload is None:
            raise ApiError(404, {"error": "RecordNotFound", "description": "Not found"})
        media = upload["attachment"]["content_type"]
        return Response(base64.b64decode(upload["data"]), media_type=media)


def take_uploads(state: dict[str, Any], tokens: Any) -> list[dict[str, Any]]:
    """The attachments of a comment's `uploads` tokens, in the order given; an unknown token is Zendesk's 422."""
    attachments = []
    for token in tokens or []:
        upload = state.get("uploads", {}).get(str(token))
        if upload is None:
            raise invalid("base", f"Uploads: {token} is not a valid upload token")
        attachments.append(dict(upload["attachment"]))
    return attachments
