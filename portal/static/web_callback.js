// The web callback page: start the call through the API and follow each leg's status live
// (Server-Sent Events). Without this script the form posts and the page refreshes itself.
"use strict";
(function () {
  const form = document.getElementById("web-callback");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const csrf = form.dataset.csrf;
  let stream = null;

  function time(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "";
  }

  function showLeg(event) {
    const row = document.getElementById("leg-" + event.leg);
    row.querySelector(".number").textContent = event.number;
    row.querySelector(".status").textContent = event.status.replace("_", " ") +
      (event.sip_code && event.status !== "answered" && event.status !== "ringing" ? " (" + event.sip_code + ")" : "");
    row.querySelector(".at").textContent = time(event.at);
  }

  function showEnd(callback) {
    document.getElementById("state").textContent = callback.state;
    for (const leg of callback.legs) {
      const row = document.getElementById("leg-" + leg.leg);
      row.querySelector(".cost").textContent = leg.cost ? leg.cost + " " + leg.currency : "";
      const by = leg.hangup_by ? ", " + (leg.hangup_by === "peer" ? "hung up" : "ended by us") : "";
      row.querySelector(".status").textContent = leg.status.replace("_", " ") + by;
    }
    document.getElementById("outcome").textContent = "Ended: " + callback.end_reason +
      (callback.total_cost ? ", cost " + callback.total_cost : "") + ".";
    document.getElementById("cancel").hidden = true;
  }

  function follow(callbackId) {
    status.hidden = false;
    status.dataset.callback = callbackId;
    document.getElementById("cancel").hidden = false;
    if (stream) stream.close();
    stream = new EventSource("/api/callbacks/" + callbackId + "/events");
    stream.addEventListener("leg", (message) => showLeg(JSON.parse(message.data)));
    stream.addEventListener("end", (message) => {
      showEnd(JSON.parse(message.data));
      stream.close();
    });
  }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    const response = await fetch("/api/callbacks", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({a: data.get("a"), b: data.get("b")}),
    });
    const body = await response.json();
    if (!response.ok) {
      error.textContent = body.detail || body.title;
      return;
    }
    for (const name of ["A", "B"]) {
      const row = document.getElementById("leg-" + name);
      row.querySelector(".number").textContent = name === "A" ? body.a : body.b;
      row.querySelector(".status").textContent = "queued";
      row.querySelector(".at").textContent = "";
      row.querySelector(".cost").textContent = "";
    }
    document.getElementById("outcome").textContent = "";
    history.replaceState(null, "", "/callback/" + body.id);
    follow(body.id);
  });

  document.getElementById("cancel").addEventListener("click", async () => {
    await fetch("/api/callbacks/" + status.dataset.callback, {method: "DELETE", headers: {"X-CSRF-Token": csrf}});
  });

  if (status.dataset.callback && document.getElementById("outcome").textContent === "") {
    follow(status.dataset.callback);
  }
})();
