({
    // The console page posts {type: "helpdesk-bridge:ready"} when it has loaded (again after the Case changes, since
    // the iframe is drawn anew); it is answered with a session for the logged-in agent on the Case on screen.
    init: function (component, event, helper) {
        if (component.get("v.listening")) {
            return;
        }
        component.set("v.listening", true);
        window.addEventListener("message", $A.getCallback(function (message) {
            var data = message.data || {};
            if (message.origin === helper.origin(component) && data.type === "helpdesk-bridge:ready") {
                helper.sendSession(component);
            }
        }));
    },

    // Another Case on screen: the page already there gets that Case's session (a new page says "ready" itself).
    caseChanged: function (component, event, helper) {
        component.set("v.error", "");
        if (component.get("v.recordId") && component.find("console")) {
            helper.sendSession(component);
        }
    }
});
