// Shared helpers of the console's pages. Everything that comes from the API is put into
// the page as text (never as HTML): stream names and addresses are client-chosen.
"use strict";

const peer = {
  // get fetches JSON from url (this node's API, or another member's) with a timeout.
  async get(url, ms = 3000) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms);
    try {
      const r = await fetch(url, { signal: ctl.signal, cache: "no-store" });
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return await r.json();
    } finally {
      clearTimeout(timer);
    }
  },

  // post sends an admin action to this node, with the admin token when one is kept.
  // It resolves to {status, text}; a refusal (401/403) is a result, not an exception.
  async post(path) {
    const headers = {};
    const tok = peer.token();
    if (tok) headers["Authorization"] = "Bearer " + tok;
    const r = await fetch(path, { method: "POST", headers, cache: "no-store" });
    return { status: r.status, text: await r.text() };
  },

  // The admin token lives in this tab's sessionStorage only.
  token() { return sessionStorage.getItem("peer-admin-token") || ""; },
  setToken(t) {
    if (t) sessionStorage.setItem("peer-admin-token", t);
    else sessionStorage.removeItem("peer-admin-token");
  },

  // el builds an element: attrs are properties (class → className), children are nodes
  // or strings (as text).
  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  },

  // fill replaces the rows of a table body; with no rows it shows one saying so.
  fill(tbody, rows, empty) {
    const cols = tbody.closest("table").querySelectorAll("thead th").length || 1;
    if (rows.length === 0) rows = [peer.el("tr", {}, peer.el("td", { colSpan: cols, class: "muted" }, empty))];
    tbody.replaceChildren(...rows);
  },

  bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  },

  // hostPort swaps the host of addr ("10.0.0.1:1935") for the host the page came from,
  // keeping the port: the address a browser (and a player on the same machine) reaches.
  hostPort(addr) {
    const i = addr.lastIndexOf(":");
    const port = i >= 0 ? addr.slice(i + 1) : addr;
    const h = location.hostname.includes(":") ? "[" + location.hostname + "]" : location.hostname;
    return h + ":" + port;
  },

  // degraded shows the banner when the view has no leader.
  degraded(view) {
    document.getElementById("degraded").hidden = !!view.leader;
    document.body.classList.toggle("is-degraded", !view.leader);
  },

  status(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.classList.toggle("bad", !!bad);
  },
};
