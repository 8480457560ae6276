// The cluster page: members, streams, this node's clients and recent events, polled
// every two seconds from this node's API (and each member's /api/v1/streams, for the
// codecs and players of the streams this node does not carry).
"use strict";

const el = peer.el;
const every = 2000;

// askAtMost bounds the members one refresh asks, however large the cluster.
const askAtMost = 32;

// memberStreams asks this node and every alive member that carries a stream (its master,
// a replica or an edge: only those have players) for its streams; a member that does not
// answer (or that the browser cannot reach) is left out of the sums.
async function memberStreams(view) {
  const out = {};
  const carriers = new Set([view.self]);
  for (const a of view.streams) [a.master, ...a.replicas, ...a.edges].forEach((n) => carriers.add(n));
  const ask = view.members.filter((m) => m.state === "alive" && carriers.has(m.name)).slice(0, askAtMost);
  await Promise.all(ask.map(async (m) => {
    const url = m.name === view.self ? "/api/v1/streams" : "http://" + m.http + "/api/v1/streams";
    try {
      out[m.name] = (await peer.get(url, 1500)).streams || [];
    } catch (e) {
      out[m.name] = null;
    }
  }));
  return out;
}

function codecText(s) {
  if (!s) return ["–", "–"];
  const v = s.video ? [s.video.codec, s.video.width && s.video.height ? s.video.width + "×" + s.video.height : "",
    s.video.fps ? Math.round(s.video.fps) + " fps" : ""].filter(Boolean).join(" ") : "–";
  const a = s.audio ? [s.audio.codec, s.audio.sample_rate ? s.audio.sample_rate / 1000 + " kHz" : "",
    s.audio.channel ? s.audio.channel + " ch" : ""].filter(Boolean).join(" ") : "–";
  return [v, a];
}

function renderMembers(view) {
  const loads = view.loads || {};
  peer.fill(document.querySelector("#members tbody"), view.members.map((m) => {
    const l = loads[m.name] || {};
    const self = m.name === view.self;
    const name = self ? el("strong", {}, m.name, " (this node)")
      : el("a", { href: "http://" + m.http + "/console/" }, m.name);
    return el("tr", { class: "state-" + m.state, "data-member": m.name },
      el("th", { scope: "row" }, name),
      el("td", {}, el("span", { class: "badge " + m.state }, m.state)),
      el("td", {}, el("span", { class: "badge raft-" + m.raft }, m.raft)),
      el("td", { class: "num" }, l.s || 0),
      el("td", { class: "num" }, l.p || 0),
      el("td", { class: "num" }, (l.e || 0).toFixed(2)),
      el("td", { class: "num" }, Math.round((l.c || 0) * 100) + " %"),
      el("td", {}, el("code", {}, m.rtmp)),
      el("td", {}, el("code", {}, m.http)),
      el("td", {}, l.version || "–"));
  }), "no members");
}

function renderStreams(view, byMember) {
  const assigned = new Set(view.streams.map((a) => a.stream));
  const rows = view.streams.map((a) => ({ ...a }));
  // A stream a node carries that placement does not know (should not last) still shows.
  for (const list of Object.values(byMember)) {
    for (const s of list || []) {
      if (!assigned.has(s.id) && s.publish && s.publish.active) {
        assigned.add(s.id);
        rows.push({ stream: s.id, master: "?", replicas: [], edges: [], epoch: 0 });
      }
    }
  }
  rows.sort((a, b) => a.stream.localeCompare(b.stream));
  peer.fill(document.querySelector("#streams tbody"), rows.map((a) => {
    let info = null;
    const players = { rtmp: 0, flv: 0, hls: 0 };
    for (const [name, list] of Object.entries(byMember)) {
      const s = (list || []).find((x) => x.id === a.stream);
      if (!s) continue;
      if (name === a.master || (!info && s.video)) info = s;
      for (const k of Object.keys(players)) players[k] += (s.players && s.players[k]) || 0;
    }
    const [video, audio] = codecText(info);
    const kbps = info && info.kbps ? Math.round(info.kbps.recv_30s) : "–";
    return el("tr", { "data-stream": a.stream },
      el("th", { scope: "row" }, el("a", { href: "stream.html?s=" + encodeURIComponent(a.stream) }, a.stream)),
      el("td", {}, a.master),
      el("td", {}, a.replicas.join(", ") || "–"),
      el("td", {}, a.edges.join(", ") || "–"),
      el("td", { class: "num" }, a.epoch),
      el("td", {}, video),
      el("td", {}, audio),
      el("td", { class: "num" }, kbps),
      el("td", { class: "num" }, players.rtmp),
      el("td", { class: "num" }, players.flv),
      el("td", { class: "num" }, players.hls));
  }), "no streams: publish one to rtmp://" + location.hostname + "/live/test");
}

function renderClients(clients) {
  peer.fill(document.querySelector("#clients tbody"), clients.map((c) => el("tr", {},
    el("td", { class: "num" }, c.id),
    el("td", {}, el("a", { href: "stream.html?s=" + encodeURIComponent(c.stream) }, c.stream)),
    el("td", {}, c.type),
    el("td", {}, el("code", {}, c.ip)),
    el("td", { class: "num" }, peer.bytes(c.send_bytes || 0)),
    // The cluster's own links are not for an operator to kick.
    el("td", {}, String(c.ip).startsWith("node:") || String(c.type).startsWith("link-") ? el("span", { class: "muted small" }, "cluster link")
      : el("button", { type: "button", class: "kick", "data-id": c.id,
        "aria-label": "Kick client " + c.id + " (" + c.type + ")" }, "Kick")))), "no clients");
}

let lastSeq = 0;
function renderEvents(events) {
  if (!events.length || events[events.length - 1].seq === lastSeq) return;
  lastSeq = events[events.length - 1].seq;
  document.getElementById("events").replaceChildren(...events.slice().reverse().slice(0, 50).map((e) =>
    el("li", { class: "ev-" + e.kind },
      el("time", { dateTime: e.time }, new Date(e.time).toLocaleTimeString()), " ",
      el("span", { class: "badge" }, e.kind.replace("_", " ")), " ", e.detail || "")));
}

async function refresh() {
  try {
    const view = await peer.get("/api/v1/cluster");
    document.getElementById("self").textContent = "· " + view.self;
    document.title = "peer console · " + view.self;
    peer.degraded(view);
    renderMembers(view);
    const [byMember, clients, events] = await Promise.all([memberStreams(view),
      peer.get("/api/v1/clients"), peer.get("/api/v1/events").catch(() => ({ events: [] }))]);
    renderStreams(view, byMember);
    renderClients(clients.clients || []);
    renderEvents(events.events || []);
    peer.status("leader " + (view.leader || "none") + " · updated " + new Date().toLocaleTimeString(), !view.leader);
  } catch (e) {
    peer.status("this node does not answer: " + e.message, true);
  }
}

async function admin(path, what) {
  const out = document.getElementById("admin-result");
  out.textContent = what + "…";
  try {
    const r = await peer.post(path);
    out.textContent = r.status === 401 || r.status === 403
      ? what + " refused (HTTP " + r.status + "): this node needs its admin token"
      : what + ": HTTP " + r.status + " " + r.text.trim();
    out.dataset.status = r.status;
  } catch (e) {
    out.textContent = what + " failed: " + e.message;
    out.dataset.status = "error";
  }
}

document.getElementById("token").value = peer.token();
document.getElementById("admin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  peer.setToken(document.getElementById("token").value.trim());
  document.getElementById("admin-result").textContent = peer.token() ? "token kept for this tab" : "no token";
});
document.getElementById("forget").addEventListener("click", () => {
  peer.setToken("");
  document.getElementById("token").value = "";
  document.getElementById("admin-result").textContent = "token forgotten";
});
document.getElementById("drain").addEventListener("click", () => {
  if (confirm("Hand this node's streams off and stop it?")) admin("/api/v1/cluster/leave", "drain and leave");
});
document.getElementById("clients").addEventListener("click", (e) => {
  const b = e.target.closest("button.kick");
  if (b) admin("/api/v1/clients/" + encodeURIComponent(b.dataset.id) + "/kick", "kick client " + b.dataset.id);
});

refresh();
setInterval(refresh, every);
