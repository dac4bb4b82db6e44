({
    origin: function (component) {
        var url = component.get("v.bridgeUrl") || "";
        var match = /^(https?:\/\/[^/]+)/.exec(url);
        return match ? match[1] : "";
    },

    sendSession: function (component) {
        var action = component.get("c.openSession");
        action.setParams({ caseId: component.get("v.recordId") });
        action.setCallback(this, function (response) {
            var frame = component.find("console");
            if (response.getState() === "SUCCESS" && frame) {
                component.set("v.error", "");
                frame.getElement().contentWindow.postMessage(
                    { type: "helpdesk-bridge:session", token: response.getReturnValue().token },
                    this.origin(component)
                );
            } else {
                var errors = response.getError();
                var text = errors && errors[0] && errors[0].message ? errors[0].message : "The chat bridge did not answer.";
                component.set("v.error", text);
            }
        });
        $A.enqueueAction(action);
    }
});
