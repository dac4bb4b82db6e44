({
    // Messages from the chat page: {name: "ready"} when it has loaded, {name: "refresh"} when its UserSig is
    // about to expire or IM rejected it. Both are answered with a fresh UserSig for the logged-in agent.
    handleMessage: function (component, message, helper) {
        var payload = message.getParams().payload || {};
        if (payload.name === "ready" || payload.name === "refresh") {
            helper.sendLogin(component);
        }
    },

    handleError: function (component, error) {
        component.set("v.error", "The chat page reported an error: " + error.getParams().description);
    }
});
