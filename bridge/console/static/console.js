// The agent console. It talks only to the bridge. The session token lives in this page's memory, goes out as
// `Authorization: Bearer`, and is renewed while the page is open; it is never put in a URL, a cookie or storage.
// A session arrives in one of three ways:
//  - a helpdesk's own script, loaded after this one by its connector's page (bootstrap `helpdesk`: the Zendesk app's,
//    connectors/zendesk/console.js), gets it and calls window.helpdeskBridgeConsole.start(token);
//  - a frame around the page (the Salesforce utility bar): it posts {type: "helpdesk-bridge:session", token};
//  - the bootstrap carries a session token itself.
(function () {
  "use strict";

  var RENEW_BEFORE = 60; // seconds before expiry
  var MARKUP =
    '<main id="console" class="console" aria-live="polite">' +
    '<header class="head"><div class="title"><span id="subject">Helpdesk Bridge chat</span> ' +
    '<span id="state" class="badge" hidden></span></div><div id="members" class="members"></div></header>' +
    '<p id="notice" class="notice" role="status">Opening the chat\u2026</p>' +
    '<button id="older" class="older" type="button" hidden>Show older messages</button>' +
    '<ol id="messages" class="messages"></ol>' +
    '<form id="composer" class="composer">' +
    '<textarea id="text" rows="2" maxlength="4000" placeholder="Write to the customer" aria-label="Message" ' +
    'disabled></textarea><button id="send" type="submit" disabled>Send</button></form></main>';
  document.body.insertAdjacentHTML("afterbegin", MARKUP); // one markup for every page that loads the console
  var $ = function (id) { return document.getElementById(id); };
  var boot = JSON.parse($("bootstrap").textContent || "{}");
  var session = null; // {token, expiresAt, groupId, agent}
  var lastSeq = 0;
  var oldestSeq = null;
  var shown = {};
  var canSend = false;
  var stopped = false;
  var renewTimer = null;
  var generation = 0; // a new session (another ticket) restarts the page; older streams stop

  function notice(text, isError) {
    var el = $("notice");
    el.textContent = text || "";
    el.className = isError ? "notice error" : "notice";
  }

  function stop(text) {
    stopped = true;
    setComposer(false);
    notice(text, true);
    if (window.parent !== window) window.parent.postMessage({ type: "helpdesk-bridge:ended", reason: text }, "*");
  }

  function api(method, path, body, token) {
    var headers = { Authorization: "Bearer " + (token || session.token) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = (data && data.error) || {};
          var err = new Error(error.message || "The bridge answered " + response.status + ".");
          err.status = response.status;
          err.code = error.code;
          throw err;
        }
        return data;
      });
    });
  }

  function groupPath(suffix) {
    return "/console/api/groups/" + encodeURIComponent(session.groupId) + (suffix || "");
  }

  function failed(err) {
    if (err.status === 401 || err.status === 403) stop(err.message);
    else notice(err.message, true);
  }

  // --- rendering ------------------------------------------------------------------------------------------------

  function setComposer(enabled) {
    $("text").disabled = !enabled;
    $("send").disabled = !enabled;
  }

  function showState(state) {
    $("subject").textContent = state.subject || ("Ticket " + state.ticketId);
    var badge = $("state");
    badge.hidden = false;
    badge.textContent = state.state;
    badge.className = "badge " + state.state;
    $("members").textContent = "In the chat: " + state.members.map(function (m) {
      return m.account === session.agent ? m.name + " (you)" : m.name;
    }).join(", ");
    canSend = state.canSend && !stopped;
    setComposer(canSend);
    if (state.state === "closed" || state.state === "dismissed") notice("This ticket is closed: the chat is read-only.");
    else if (!state.canSend) notice("You are not in this ticket's chat any more.");
    else notice("");
  }

  function render(message, older) {
    if (shown[message.seq]) return;
    shown[message.seq] = true;
    var item = document.createElement("li");
    var mine = message.from === session.agent;
    item.className = "message " + message.role + (mine ? " mine" : "");
    item.dataset.seq = message.seq;
    item.dataset.from = message.from;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = mine ? "You" : message.name;
    item.appendChild(who);
    item.appendChild(document.createTextNode(message.text));
    item.title = new Date(message.time * 1000).toLocaleString();
    var list = $("messages");
    var stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 24;
    if (older) list.insertBefore(item, list.firstChild);
    else {
      // Keep MsgSeq order even when a sent message and the stream race each other.
      var next = null;
      for (var el = list.lastElementChild; el && Number(el.dataset.seq) > message.seq; el = el.previousElementSibling) next = el;
      list.insertBefore(item, next);
      if (stick || mine) list.scrollTop = list.scrollHeight;
    }
    lastSeq = Math.max(lastSeq, message.seq);
    oldestSeq = oldestSeq === null ? message.seq : Math.min(oldestSeq, message.seq);
  }

  // --- the live stream: server-sent events read with fetch() so the token stays in a header -----------------------

  function listen() {
    if (stopped) return;
    var mine = generation;
    fetch(groupPath("/events?after=" + lastSeq), {
      headers: { Authorization: "Bearer " + session.token, Accept: "text/event-stream" },
      cache: "no-store",
      credentials: "omit"
    }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          var err = new Error(((data && data.error) || {}).message || "The live updates stopped.");
          err.status = response.status;
          throw err;
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var pump = function () {
        return reader.read().then(function (chunk) {
          if (chunk.done || mine !== generation) return mine === generation ? null : { reason: "replaced" };
          buffer += decoder.decode(chunk.value, { stream: true });
          var parts = buffer.split("\n\n");
          buffer = parts.pop();
          var ended = null;
          parts.forEach(function (part) {
            var name = "message", data = "";
            part.split("\n").forEach(function (line) {
              if (line.indexOf("event: ") === 0) name = line.slice(7);
              else if (line.indexOf("data: ") === 0) data += line.slice(6);
            });
            if (!data) return;
            var payload = JSON.parse(data);
            if (name === "message") render(payload, false);
            else if (name === "state") showState(payload);
            else if (name === "end") ended = payload;
          });
          if (ended) return ended;
          return pump();
        });
      };
      return pump();
    }).then(function (ended) {
      if (ended && ended.reason === "replaced") return;
      if (ended && ended.reason === "expired") stop("Your session has expired: open the chat again from the ticket.");
      else if (ended && ended.reason === "revoked") stop(ended.message || "This ticket is no longer yours.");
      else setTimeout(listen, 300);
    }, function (err) {
      if (mine !== generation) return;
      if (err.status === 401 || err.status === 403) stop(err.message);
      else setTimeout(listen, 3000);
    });
  }

  // --- sessions -------------------------------------------------------------------------------------------------

  function scheduleRenewal() {
    clearTimeout(renewTimer);
    var wait = Math.max(5, session.expiresAt - Date.now() / 1000 - RENEW_BEFORE);
    renewTimer = setTimeout(function () {
      api("POST", "/console/api/session").then(function (renewed) {
        session.token = renewed.token;
        session.expiresAt = renewed.expiresAt;
        scheduleRenewal();
      }, failed);
    }, wait * 1000);
  }

  function start(token) {
    generation += 1;
    shown = {};
    lastSeq = 0;
    oldestSeq = null;
    $("messages").textContent = "";
    // Renewing at once checks the token and says which group it opens.
    return api("POST", "/console/api/session", undefined, token).then(function (opened) {
      session = opened;
      stopped = false;
      scheduleRenewal();
      return Promise.all([api("GET", groupPath()), api("GET", groupPath("/messages"))]);
    }).then(function (answers) {
      showState(answers[0]);
      answers[1].messages.forEach(function (m) { render(m, false); });
      $("older").hidden = answers[1].complete;
      $("messages").scrollTop = $("messages").scrollHeight;
      document.body.dataset.ready = "true";
      listen();
    }).catch(failed);
  }

  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("text").value.trim();
    if (!text || !canSend) return;
    // One Random per message, reused if the same message is sent again: IM keeps one copy.
    var random = window.crypto.getRandomValues(new Uint32Array(1))[0];
    setComposer(false);
    api("POST", groupPath("/messages"), { text: text, random: random }).then(function (answer) {
      $("text").value = "";
      render(answer.message, false);
      setComposer(canSend);
      $("text").focus();
    }, function (err) {
      failed(err);
      setComposer(canSend && !stopped);
    });
  });

  $("text").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  $("older").addEventListener("click", function () {
    api("GET", groupPath("/messages?before=" + (oldestSeq - 1))).then(function (page) {
      var list = $("messages");
      var height = list.scrollHeight;
      page.messages.slice().reverse().forEach(function (m) { render(m, true); });
      list.scrollTop += list.scrollHeight - height;
      $("older").hidden = page.complete;
    }, failed);
  });

  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (event.source === window.parent && data.type === "helpdesk-bridge:session" && data.token) start(data.token);
  });

  // What a helpdesk's script may use to open the session.
  window.helpdeskBridgeConsole = { boot: boot, api: api, start: start, stop: stop, failed: failed, notice: notice };

  if (boot.helpdesk) notice("Opening the chat for this ticket…"); // its script takes it from here
  else if (boot.token) start(boot.token);
  else if (window.parent !== window) {
    notice("Waiting for the session…");
    window.parent.postMessage({ type: "helpdesk-bridge:ready" }, "*");
  } else {
    notice("Open this chat from the ticket: the Zendesk app, the Salesforce utility bar or the sandbox.", true);
  }
})();
