/*
 * Helpdesk Bridge agent chat, framed by lightning:container in the tim_utilities_bar Aura component.
 * The console sends {name: "login", value: {userId, userSig, sdkAppId, expiresAt}}: the agent's own
 * 18-character user Id (the IM UserID) and a UserSig that the bridge issued through Apex. Nothing is pasted.
 * Groups are the tickets' IM groups (group ID = 18-character Case Id) the agent was added to by the bridge.
 */
(function () {
    "use strict";

    // The container injects the global LCC.onlineSupport (the lightning-container npm module wraps the same calls).
    var lcc = window.LCC && window.LCC.onlineSupport;
    var chat = null;
    var currentGroup = null;
    var refreshTimer = null;

    function $(id) { return document.getElementById(id); }
    function status(text) { $("status").textContent = text; }

    function toConsole(message) {
        if (lcc) {
            lcc.sendMessage("containerUserMessage", { payload: message });
        }
    }

    function render(message) {
        if (!currentGroup || message.to !== currentGroup) {
            return;
        }
        var li = document.createElement("li");
        var from = document.createElement("span");
        from.className = "from";
        from.textContent = message.nick || message.from || "system";
        var text = document.createElement("span");
        text.textContent = message.type === TencentCloudChat.TYPES.MSG_TEXT ? message.payload.text : "[" + message.type + "]";
        li.appendChild(from);
        li.appendChild(text);
        $("messages").appendChild(li);
        $("messages").scrollTop = $("messages").scrollHeight;
    }

    function openGroup(group, item) {
        currentGroup = group.groupID;
        Array.prototype.forEach.call($("groups").children, function (li) { li.classList.remove("active"); });
        item.classList.add("active");
        $("conversation").hidden = false;
        $("conversation-title").textContent = group.name + " (" + group.groupID + ")";
        $("messages").textContent = "";
        chat.getMessageList({ conversationID: "GROUP" + group.groupID }).then(function (res) {
            res.data.messageList.forEach(render);
        });
    }

    function loadGroups() {
        chat.getGroupList().then(function (res) {
            var list = $("groups");
            list.textContent = "";
            res.data.groupList.forEach(function (group) {
                var li = document.createElement("li");
                li.textContent = group.name || group.groupID;
                li.addEventListener("click", function () { openGroup(group, li); });
                list.appendChild(li);
            });
        });
    }

    function scheduleRefresh(expiresAt) {
        clearTimeout(refreshTimer);
        if (typeof expiresAt === "number") {
            // Ask for a new UserSig ten minutes before this one expires.
            var ms = expiresAt * 1000 - Date.now() - 10 * 60 * 1000;
            refreshTimer = setTimeout(function () { toConsole({ name: "refresh" }); }, Math.max(ms, 60 * 1000));
        }
    }

    function login(value) {
        if (chat) {
            chat.logout().catch(function () {}).then(function () { start(value); });
        } else {
            start(value);
        }
    }

    function start(value) {
        chat = TencentCloudChat.create({ SDKAppID: Number(value.sdkAppId) });
        chat.on(TencentCloudChat.EVENT.SDK_READY, function () {
            status("Signed in to chat as " + value.userId);
            loadGroups();
        });
        chat.on(TencentCloudChat.EVENT.MESSAGE_RECEIVED, function (event) { event.data.forEach(render); });
        chat.on(TencentCloudChat.EVENT.GROUP_LIST_UPDATED, loadGroups);
        chat.on(TencentCloudChat.EVENT.KICKED_OUT, function (event) {
            status("Signed out of chat (" + event.data.type + ").");
            if (event.data.type === TencentCloudChat.TYPES.KICKED_OUT_USERSIG_EXPIRED) {
                toConsole({ name: "refresh" });
            }
        });
        status("Signing in to chat...");
        chat.login({ userID: value.userId, userSig: value.userSig }).catch(function (err) {
            status("Chat sign-in failed: " + err.message);
        });
        scheduleRefresh(value.expiresAt);
    }

    $("composer").addEventListener("submit", function (event) {
        event.preventDefault();
        var text = $("text").value.trim();
        if (!chat || !currentGroup || !text) {
            return;
        }
        var message = chat.createTextMessage({
            to: currentGroup,
            conversationType: TencentCloudChat.TYPES.CONV_GROUP,
            payload: { text: text }
        });
        chat.sendMessage(message).then(function (res) {
            $("text").value = "";
            render(res.data.message);
        }).catch(function (err) {
            status("Not sent: " + err.message);
        });
    });

    if (!lcc) {
        status("This page only works inside the Salesforce console (lightning:container).");
        return;
    }
    if (typeof TencentCloudChat === "undefined") {
        status("chat.js is missing from the static resource: run apex/scripts/fetch-chat-sdk.sh and deploy again.");
        return;
    }
    lcc.addMessageHandler(function (message) {
        if (message && message.name === "login" && message.value) {
            login(message.value);
        } else if (message && message.name === "loginFailed") {
            status(String(message.value));
        }
    });
    toConsole({ name: "ready" });
})();
