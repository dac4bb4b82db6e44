"""Salesforce logins, each making a session (`core.new_session`) the REST API accepts:

- SOAP `login()` at `POST /services/Soap/u/<version>`: a `loginResponse` whose `serverUrl` points back at this
  server (derived from the request's Host), or the documented `sf:INVALID_LOGIN` fault (HTTP 500).
- OAuth 2.0 at `POST /services/oauth2/token`: grant types `password`, `client_credentials` (HTTP Basic or form
  credentials) and `urn:ietf:params:oauth:grant-type:jwt-bearer` (RS256-verified when a public key is
  configured; the `exp` claim may be a string, as simple-salesforce sends it). Errors are `{"error",
  "error_description"}` with 400.

The credentials accepted are the app's `sf_config` (create_app's arguments).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.salesforce.core import ORG_ID, base_url, checksum, identity_url, new_session, soap_fault

INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


def _xml_text(root: ET.Element, local_name: str) -> str | None:
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == local_name:
            return element.text or ""
    return None


async def soap_login(request: Request) -> Response:
    conf = request.app.state.sf_config
    state = request.app.state.sf
    version = request.path_params["version"]
    try:
        root = ET.fromstring(await request.body())
    except ET.ParseError:
        return soap_fault("INVALID_SOAP_HEADER", "The request is not a well-formed SOAP envelope")
    username, password = _xml_text(root, "username"), _xml_text(root, "password")
    if username is None or password is None:
        return soap_fault("UNKNOWN_EXCEPTION", "The emulator only implements the login() call")
    expected = conf["password"] + (conf["security_token"] or "")
    if username != conf["username"] or not hmac.compare_digest(password.encode(), expected.encode()):
        return soap_fault("INVALID_LOGIN", INVALID_LOGIN)
    user_id = state["api_user_id"]
    user = state["users"][user_id]
    token = new_session(state, user_id, "soap")
    base = base_url(request)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{base}/services/Soap/m/{version}/{ORG_ID}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{base}/services/Soap/u/{version}/{ORG_ID}</serverUrl>"
        f"<sessionId>{escape(token)}</sessionId><userId>{user_id}</userId>"
        "<userInfo>"
        f"<organizationId>{ORG_ID}{checksum(ORG_ID)}</organizationId>"
        "<organizationName>Emulated Org</organizationName>"
        f"<userEmail>{escape(user['Email'])}</userEmail><userFullName>{escape(user['Name'])}</userFullName>"
        f"<userId>{user_id}</userId><userName>{escape(user['Username'])}</userName>"
        "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, media_type="text/xml; charset=utf-8")


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def token_response(request: Request, user_id: str, flow: str) -> JSONResponse:
    state = request.app.state.sf
    token = new_session(state, user_id, flow)
    base = base_url(request)
    issued_at = str(int(time.time() * 1000))
    identity = identity_url(request, user_id)
    signature = base64.b64encode(hmac.new(token.encode(), (identity + issued_at).encode(), hashlib.sha256).digest())
    return JSONResponse(
        {
            "access_token": token,
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature.decode(),
            "scope": "api",
            "api_instance_url": base,
        },
        headers={"Cache-Control": "no-store"},
    )


def _audience_ok(aud: Any, base: str) -> bool:
    audiences = aud if isinstance(aud, list) else [aud]
    for value in audiences:
        if not isinstance(value, str):
            continue
        value = value.rstrip("/")
        if value in ("https://login.salesforce.com", "https://test.salesforce.com", base):
            return True
        if re.fullmatch(r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.my\.salesforce\.com", value):
            return True
    return False


async def oauth_token(request: Request) -> Response:
    conf = request.app.state.sf_config
    state = request.app.state.sf
    # Parsed by hand: Starlette's form parser needs python-multipart, and this body is always urlencoded.
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    grant = str(form.get("grant_type") or "")
    user_by_name = {u["Username"]: uid for uid, u in state["users"].items()}

    if grant == "password":
        if not conf["consumer_key"] or form.get("client_id") != conf["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not conf["consumer_secret"] or form.get("client_secret") != conf["consumer_secret"]:
            return _oauth_error("invalid_client", "invalid client credentials")
        expected = conf["password"] + (conf["security_token"] or "")
        password = str(form.get("password") or "")
        if form.get("username") != conf["username"] or password not in (expected, conf["password"]):
            return _oauth_error("invalid_grant", "authentication failure")
        return token_response(request, state["api_user_id"], "oauth_password")

    if grant == "client_credentials":
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
        if not conf["consumer_key"] or client_id != conf["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not conf["consumer_secret"] or client_secret != conf["consumer_secret"]:
            return _oauth_error("invalid_client", "invalid client credentials")
        return token_response(request, state["api_user_id"], "client_credentials")

    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        assertion = str(form.get("assertion") or "")
        try:
            header = jwt.get_unverified_header(assertion)
            if conf["jwt_public_key_pem"]:
                if header.get("alg") != "RS256":
                    return _oauth_error("invalid_grant", "invalid assertion")
                # exp arrives as a string from simple-salesforce; PyJWT insists on a number, so check it here.
                claims = jwt.decode(
                    assertion,
                    conf["jwt_public_key_pem"],
                    algorithms=["RS256"],
                    options={
                        "verify_exp": False,
                        "verify_aud": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if not conf["consumer_key"] or claims.get("iss") != conf["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not _audience_ok(claims.get("aud"), base_url(request)):
            return _oauth_error("invalid_grant", "audience is invalid")
        try:
            expired = float(claims.get("exp", "")) < time.time()
        except (TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expired:
            return _oauth_error("invalid_grant", "expired authorization code")
        user_id = user_by_name.get(str(claims.get("sub")))
        if user_id is None:
            return _oauth_error("invalid_grant", "authentication failure")
        return token_response(request, user_id, "jwt_bearer")

    return _oauth_error("unsupported_grant_type", "grant type not supported")
