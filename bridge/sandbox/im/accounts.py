"""IM accounts and their profiles: `im_open_login_svc` (`account_import`, `multiaccount_import`, `account_check`)
and `profile/portrait_get` (only the standard Nick tag is modelled)."""

from __future__ import annotations

import json
from typing import Any

from bridge.sandbox.im.core import LOGIN_SVC, PROFILE_SVC, ApiError, Command, IMState, unix_now, valid_userid


class Accounts:
    def __init__(self, state: IMState):
        self.state = state

    def commands(self) -> dict[tuple[str, str], Command]:
        return {
            (LOGIN_SVC, "account_import"): self.account_import,
            (LOGIN_SVC, "multiaccount_import"): self.multiaccount_import,
            (LOGIN_SVC, "account_check"): self.account_check,
            (PROFILE_SVC, "portrait_get"): self.portrait_get,
        }

    def import_account(self, user_id: str, nick: Any = None, face_url: Any = None) -> None:
        account = self.state.accounts.setdefault(
            user_id, {"UserID": user_id, "Nick": "", "FaceUrl": "", "CreateTime": unix_now()}
        )
        if isinstance(nick, str):
            account["Nick"] = nick
        if isinstance(face_url, str):
            account["FaceUrl"] = face_url

    def account_import(self, body: dict[str, Any]) -> dict[str, Any]:
        user_id = body.get("UserID", body.get("Identifier"))  # older docs call it Identifier
        if not valid_userid(user_id):
            raise ApiError(70402, "invalid parameter: UserID must be 1 to 32 bytes of printable ASCII")
        self.import_account(user_id, body.get("Nick"), body.get("FaceUrl"))
        return {}

    def multiaccount_import(self, body: dict[str, Any]) -> dict[str, Any]:
        if isinstance(body.get("AccountList"), list):
            items = [
                (a.get("UserID") if isinstance(a, dict) else a, a if isinstance(a, dict) else {})
                for a in body["AccountList"]
            ]
        elif isinstance(body.get("Accounts"), list):
            items = [(a, {}) for a in body["Accounts"]]
        else:
            raise ApiError(70402, "invalid parameter: Accounts (or AccountList) is required")
        if not items or len(items) > 100:
            raise ApiError(70402, "invalid parameter: import 1 to 100 accounts at a time")
        failed = []
        for user_id, extra in items:
            if valid_userid(user_id):
                self.import_account(user_id, extra.get("Nick"), extra.get("FaceUrl"))
            else:
                failed.append(user_id if isinstance(user_id, str) else json.dumps(user_id))
        return {"FailAccounts": failed}

    def portrait_get(self, body: dict[str, Any]) -> dict[str, Any]:
        """Profiles of up to 100 imported accounts; only the standard Nick tag is modelled."""
        accounts, tags = body.get("To_Account"), body.get("TagList")
        if (
            not isinstance(accounts, list)
            or not 0 < len(accounts) <= 100
            or not all(isinstance(a, str) for a in accounts)
            or not isinstance(tags, list)
        ):
            raise ApiError(40001, "To_Account (1 to 100 UserIDs) and TagList are required")
        unknown = [a for a in accounts if a not in self.state.accounts]
        if unknown:
            raise ApiError(40003)
        items = []
        for account in accounts:
            profile = [{"Tag": "Tag_Profile_IM_Nick", "Value": self.state.accounts[account]["Nick"]}]
            items.append(
                {
                    "To_Account": account,
                    "ProfileItem": [p for p in profile if p["Tag"] in tags],
                    "ResultCode": 0,
                    "ResultInfo": "",
                }
            )
        return {"UserProfileItem": items, "ErrorDisplay": ""}

    def account_check(self, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("CheckItem")
        if not isinstance(items, list) or not items or len(items) > 100:
            raise ApiError(70402, "invalid parameter: CheckItem must list 1 to 100 accounts")
        results = []
        for item in items:
            user_id = item.get("UserID") if isinstance(item, dict) else None
            if not isinstance(user_id, str):
                raise ApiError(70402, "invalid parameter: every CheckItem needs a UserID")
            status = "Imported" if user_id in self.state.accounts else "NotImported"
            results.append({"UserID": user_id, "ResultCode": 0, "ResultInfo": "", "AccountStatus": status})
        return {"ResultItem": results}
