// The customer's side of the sandbox: the page talks to IM the way an app does with the IM SDK (send, read the
// group's messages), authenticated by the customer's own UserSig that its backend obtained from the bridge.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var me = null; // {userId, userSig, groupId, ticketId, im}
  var lastSeq = 0, notices = 0, tips = 0;

  function im(path, body) {
    var payload = Object.assign({ UserID: me.userId, UserSig: me.userSig, GroupId: me.groupId }, body || {});
    return fetch(me.im + "/_emulator/client/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload)
    }).then(function (r) { return r.json(); });
  }

  function add(cls, who, text, seq) {
    var item = document.createElement("li");
    item.className = cls;
    if (seq) item.dataset.seq = seq;
    if (who) {
      var b = document.createElement("b");
      b.textContent = who;
      item.appendChild(b);
    }
    item.appendChild(document.createTextNode(text));
    $("messages").appendChild(item);
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  function refresh() {
    return im("messages", { AfterSeq: lastSeq }).then(function (answer) {
      if (answer.ErrorCode) { $("status").textContent = answer.ErrorInfo; return; }
      answer.Notices.slice(notices).forEach(function (text) { add("notice", "", text); });
      notices = answer.Notices.length;
      answer.Tips.slice(tips).forEach(function (tip) {
        tip.Members.filter(function (m) { return m !== me.userId; }).forEach(function (m) {
          var name = answer.Nicks[m] || "An agent";
          add("notice", "", name + (tip.Type === "Join" ? " joined the chat" : " left the chat"));
        });
      });
      tips = answer.Tips.length;
      answer.MsgList.forEach(function (m) {
        if (m.MsgSeq <= lastSeq) return; // two refreshes crossed
        lastSeq = m.MsgSeq;
        var mine = m.From_Account === me.userId;
        var text = m.MsgBody.map(function (e) { return (e.MsgContent && e.MsgContent.Text) || ""; }).join("\n");
        add(mine ? "mine" : "agent", mine ? "" : (answer.Nicks[m.From_Account] || "Support"), text, m.MsgSeq);
      });
    });
  }

  $("start").addEventListener("submit", function (event) {
    event.preventDefault();
    $("status").textContent = "Opening a ticket…";
    fetch("/api/start", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("name").value, subject: $("subject").value })
    }).then(function (r) { return r.json(); }).then(function (answer) {
      if (answer.error) { $("status").textContent = answer.error.message; return; }
      me = answer;
      $("start").hidden = true;
      $("messages").hidden = false;
      $("composer").hidden = false;
      $("who").textContent = "ticket #" + me.ticketId + " · " + me.userId;
      $("status").textContent = "Ticket " + me.ticketId + " is open: an agent will join soon.";
      document.body.dataset.groupId = me.groupId;
      document.body.dataset.ticketId = me.ticketId;
      refresh();
      setInterval(refresh, 1000);
    });
  });

  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("text").value.trim();
    if (!text) return;
    im("send", { Text: text }).then(function (answer) {
      if (answer.ErrorCode) { $("status").textContent = answer.ErrorInfo; return; }
      $("text").value = "";
      refresh();
    });
  });
})();
