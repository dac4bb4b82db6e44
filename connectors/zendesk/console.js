// The agent console in Zendesk's ticket sidebar: the bridge verified Zendesk's signed first load and put a grant in
// the bootstrap; this asks the Zendesk app framework which ticket the app sits beside, trades the grant for that
// ticket's session, and starts the console (window.helpdeskBridgeConsole, from /console/static/console.js).
(function () {
  "use strict";

  var console_ = window.helpdeskBridgeConsole;
  var zendesk = console_.boot.zendesk;
  var script = document.createElement("script");
  script.src = zendesk.sdk;
  script.onerror = function () { console_.stop("The Zendesk app framework could not be loaded."); };
  script.onload = function () {
    var client = window.ZAFClient.init();
    client.invoke("resize", { width: "100%", height: "480px" });
    client.get("ticket.id").then(function (data) {
      var ticket = { ticketId: String(data["ticket.id"]) };
      return console_.api("POST", "/console/api/sessions/zendesk", ticket, zendesk.grant);
    }).then(function (opened) { return console_.start(opened.token); }, console_.failed);
  };
  document.head.appendChild(script);
})();
