({
    sendLogin: function (component) {
        var action = component.get("c.issueUserSig");
        action.setCallback(this, function (response) {
            var state = response.getState();
            if (state === "SUCCESS") {
                var result = response.getReturnValue();
                component.set("v.error", "");
                component.find("chat").message({
                    name: "login",
                    value: {
                        userId: result.userId,
                        userSig: result.userSig,
                        sdkAppId: result.sdkAppId,
                        expiresAt: result.expiresAt
                    }
                });
            } else {
                var errors = response.getError();
                var text = errors && errors[0] && errors[0].message ? errors[0].message : "The chat bridge did not answer.";
                component.set("v.error", text);
                component.find("chat").message({ name: "loginFailed", value: text });
            }
        });
        $A.enqueueAction(action);
    }
});
