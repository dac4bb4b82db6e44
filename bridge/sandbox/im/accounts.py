"""IM accounts and their profiles: `im_open_login_svc` (`account_import`, `multiaccount_import`, `account_check`)
and `profile/portrait_get`, `profile/portrait_set` (the standard Nick and Image tags are modelled).

A repeated import of an account keeps its one identity and takes the Nick and FaceUrl it carries (Tencent's
multi-account import documents updating them); `portrait_set` is the documented way to change a profile."""

from __future__ import annotations

import json
from typing import Any

from bridge.sandbox.im.core import LOGIN_SVC, PROFILE_SVC, ApiError, Command, IMState, unix_now, valid_userid

PROFILE_TAGS = {"Tag_Profile_IM_Nick": "Nick", "Tag_Profile_IM_Image": "FaceUrl"}  # standard tags kept
PROFILE_VALUE_MAX_BYTES = 500


class Accounts:
    def __init__(self, state: IMState):
        self.state = state

    def commands(self) -> dict[tuple[str, str], Command]:
        return {
            (LOGIN_SVC, "account_import"): self.account_import,
            (LOGIN_SVC, "multiaccount_import"): self.multiaccount_import,
            (LOGIN_SVC, "account_check"): self.account_check,
            (PROFILE_SVC, "portrait_get"): self.portrait_get,
            (PROFILE_SVC, "portrait_set"): self.portrait_set,
        }

    def import_account(self, user_id: str, nick: Any = None, face_url: Any = None) -> None:
        for value in (nick, face_url):
            if isinstance(value, str) and len(value.encode()) > PROFILE_VALUE_MAX_BYTES:
                raise ApiError(40601)
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
        """Profiles of up to 100 imported accounts (the Nick and Image tags)."""
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
            profile = [{"Tag": tag, "Value": self.state.accounts[account][key]} for tag, key in PROFILE_TAGS.items()]
            items.append(
                {
                    "To_Account": account,
                    "ProfileItem": [p for p in profile if p["Tag"] in tags],
                    "ResultCode": 0,
                    "ResultInfo": "",
                }
            )
        return {"UserProfileItem": items, "ErrorDisplay": ""}

    def portrait_set(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set profile fields of an imported account; of the standard tags, Nick and Image (FaceUrl) are kept."""
        user_id, items = body.get("From_Account"), body.get("ProfileItem")
        if (
            not isinstance(user_id, str)
            or not isinstance(items, list)
            or not items
            or not all(isinstance(i, dict) and isinstance(i.get("Tag"), str) and "Value" in i for i in items)
        ):
            raise ApiError(40001, "From_Account and ProfileItem (a list of Tag and Value) are required")
        if user_id not in self.state.accounts:
            raise ApiError(40003)
        changes: dict[str, Any] = {}
        for item in items:
            value = item["Value"]
            if isinstance(value, str) and len(value.encode()) > PROFILE_VALUE_MAX_BYTES:
                raise ApiError(40601)
            if item["Tag"] in PROFILE_TAGS:
                if not isinstance(value, str):
                    raise ApiError(40001, f"{item['Tag']} takes a string")
                changes[PROFILE_TAGS[item["Tag"]]] = value
        self.state.accounts[user_id].update(changes)
        return {"ErrorDisplay": ""}

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
