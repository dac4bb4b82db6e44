"""A Tencent Cloud IM REST API v4 emulator: a real HTTP server the tests and `helpdesk-bridge sandbox` talk to.

One module per part of IM: app.py (`create_app`, the access layer, control routes, faults), accounts.py
(`im_open_login_svc`, `profile`), groups.py and messages.py (`group_open_http_svc`), callbacks.py
(`Group.CallbackAfterSendMsg`), client.py (what an app user does with the client SDK), usersig.py (UserSig
verification); core.py holds the ErrorCodes, the answer envelope and the state they share.
"""

from bridge.sandbox.im.app import create_app

__all__ = ["create_app"]
