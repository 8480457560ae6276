// The stream page: plays one stream from the node the page came from (whichever node
// masters it) over HTTP-FLV with mpegts.js or HLS with hls.js (or the browser's own HLS),
// and lists the stream's URLs for OBS, VLC and ffplay.
//
// A player that stops advancing (its node lost the stream's upstream for longer than a
// failover takes, or the connection broke) is rebuilt in place, without a page reload.
// window.peerPlayer exposes the counters the browser tests read.
"use strict";

const el = peer.el;
const params = new URLSearchParams(location.search);
const stream = params.get("s") || "live/test";
const video = document.getElementById("video");
const stallLimit = 8; // seconds without progress before the player is rebuilt

const state = window.peerPlayer = {
  stream,
  proto: ["hls", "native"].includes(params.get("proto")) ? params.get("proto") : "flv",
  played: 0,       // seconds of media played, summed over rebuilds
  restarts: 0,     // players rebuilt after a stall or a fatal error
  videoErrors: 0,  // error events of the <video> element while a player was attached
  libErrors: 0,    // errors the player libraries reported (some they recover from)
  lastError: "",
};

let player = null; // {destroy()} of the running player
let lastTime = 0, stalledFor = 0, restartTimer = null;

function mediaURL(ext) {
  return location.origin + "/" + stream.split("/").map(encodeURIComponent).join("/") + ext;
}

function problem(text) {
  state.lastError = text;
  document.getElementById("st-error").textContent = text + " (" + new Date().toLocaleTimeString() + ")";
}

function startFLV() {
  const p = mpegts.createPlayer({ type: "flv", isLive: true, url: mediaURL(".flv") },
    { enableWorker: false, enableStashBuffer: false, lazyLoad: false,
      liveBufferLatencyChasing: true, liveBufferLatencyMaxLatency: 3, liveBufferLatencyMinRemain: 0.5 });
  p.on(mpegts.Events.ERROR, (type, detail) => {
    state.libErrors++;
    problem("mpegts.js: " + type + " " + detail);
    scheduleRestart(1000);
  });
  // The node closed the stream (its data is all in): a live player reconnects.
  p.on(mpegts.Events.LOADING_COMPLETE, () => {
    problem("the node closed the stream: reconnecting");
    scheduleRestart(1000);
  });
  p.attachMediaElement(video);
  p.load();
  return { url: mediaURL(".flv"), destroy() { p.pause(); p.unload(); p.detachMediaElement(); p.destroy(); } };
}

// nativeHLS: the browser plays HLS itself (Safari, iOS, some Chromium builds).
const nativeHLS = video.canPlayType("application/vnd.apple.mpegurl") !== "";
if (state.proto === "native" && !nativeHLS) state.proto = "hls";

function startHLS() {
  const url = mediaURL(".m3u8");
  if (state.proto === "native" || !window.Hls || !Hls.isSupported()) {
    // The browser's own HLS: chosen, or the only one (no MediaSource, as on older iPhones).
    video.src = url;
    return { url, destroy() { video.removeAttribute("src"); video.load(); } };
  }
  const h = new Hls({ liveSyncDurationCount: 2, manifestLoadingMaxRetry: 10, levelLoadingMaxRetry: 10, fragLoadingMaxRetry: 10 });
  h.on(Hls.Events.ERROR, (ev, data) => {
    state.libErrors++;
    problem("hls.js: " + data.type + " " + data.details + (data.fatal ? " (fatal)" : ""));
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) h.recoverMediaError();
    else scheduleRestart(1000);
  });
  h.loadSource(url);
  h.attachMedia(video);
  return { url, destroy() { h.destroy(); } };
}

function start() {
  stop();
  lastTime = 0;
  stalledFor = 0;
  player = state.proto === "flv" ? startFLV() : startHLS();
  document.getElementById("st-url").textContent = player.url;
  const p = video.play();
  if (p) p.catch(() => {}); // autoplay refused: the controls are there
}

function stop() {
  if (!player) return;
  const p = player;
  player = null;
  try { p.destroy(); } catch (e) { /* a half-built player: nothing to keep */ }
}

function scheduleRestart(ms) {
  if (restartTimer) return;
  restartTimer = setTimeout(() => {
    restartTimer = null;
    state.restarts++;
    document.getElementById("st-restarts").textContent = state.restarts;
    start();
  }, ms);
}

// A live stream does not end: the node closed the connection (a kick, a restart), so
// the player reconnects.
video.addEventListener("ended", () => {
  if (!player) return;
  problem("the stream ended: reconnecting");
  scheduleRestart(1000);
});

video.addEventListener("error", () => {
  if (!player) return;
  state.videoErrors++;
  problem("video element: " + (video.error ? video.error.message || "code " + video.error.code : "error"));
  scheduleRestart(1000);
});

// The watchdog adds up progress (small forward steps only: a rebuilt player starts its
// clock again, latency chasing jumps ahead) and rebuilds a player that stalls.
setInterval(() => {
  const t = video.currentTime;
  const d = t - lastTime;
  lastTime = t;
  if (d > 0 && d < 2) {
    state.played += d;
    stalledFor = 0;
  } else if (player && (!video.paused || video.ended)) {
    stalledFor += 0.5;
    if (stalledFor >= stallLimit) {
      problem("no progress for " + stallLimit + " s: reconnecting");
      stalledFor = 0;
      scheduleRestart(0);
    }
  }
  let ahead = 0;
  for (let i = 0; i < video.buffered.length; i++) {
    if (video.buffered.start(i) <= t && t <= video.buffered.end(i)) ahead = video.buffered.end(i) - t;
  }
  document.getElementById("st-time").textContent = t.toFixed(1) + " s (played " + state.played.toFixed(1) + " s)";
  document.getElementById("st-buffer").textContent = ahead.toFixed(1) + " s";
}, 500);

function copyButton(text) {
  const b = el("button", { type: "button", class: "copy" }, "Copy");
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "Copied";
    } catch (e) {
      // No clipboard outside secure contexts: select the text for Ctrl+C.
      const code = b.closest("tr").querySelector("code");
      getSelection().selectAllChildren(code);
      b.textContent = "Selected";
    }
    setTimeout(() => { b.textContent = "Copy"; }, 1500);
  });
  return b;
}

function renderURLs(self) {
  const [app, ...rest] = stream.split("/");
  const name = rest.join("/");
  const rtmpHost = self ? peer.hostPort(self.rtmp) : location.hostname + ":1935";
  const rtmp = "rtmp://" + rtmpHost + "/" + stream;
  const rows = [
    ["OBS (publish)", "Server rtmp://" + rtmpHost + "/" + app + " · Stream key " + name],
    ["RTMP (VLC, ffplay)", rtmp],
    ["HTTP-FLV", mediaURL(".flv")],
    ["HLS", mediaURL(".m3u8")],
    ["ffplay", "ffplay " + mediaURL(".flv")],
    ["VLC", "vlc " + mediaURL(".m3u8")],
  ];
  peer.fill(document.querySelector("#urls tbody"), rows.map(([what, text]) =>
    el("tr", {}, el("th", { scope: "row" }, what), el("td", {}, el("code", {}, text)), el("td", {}, copyButton(text)))), "");
}

// mediaText describes the stream as this node carries it.
function mediaText(s) {
  const parts = [];
  if (s.video) parts.push(s.video.codec + " " + s.video.width + "×" + s.video.height + (s.video.fps ? " " + Math.round(s.video.fps) + " fps" : ""));
  if (s.audio) parts.push(s.audio.codec + " " + (s.audio.sample_rate / 1000) + " kHz");
  if (s.kbps) parts.push(Math.round(s.kbps.recv_30s) + " kbit/s");
  const p = s.players || {};
  parts.push("players here: RTMP " + (p.rtmp || 0) + ", FLV " + (p.flv || 0) + ", HLS " + (p.hls || 0));
  return parts.join(" · ");
}

let urlsDone = false;
async function refresh() {
  try {
    const view = await peer.get("/api/v1/cluster");
    const self = view.members.find((m) => m.name === view.self);
    document.getElementById("self").textContent = "· from " + view.self;
    peer.degraded(view);
    if (!urlsDone) { renderURLs(self); urlsDone = true; }
    const a = view.streams.find((x) => x.stream === stream);
    document.getElementById("placement").textContent = a
      ? "master " + a.master + " · replicas " + (a.replicas.join(", ") || "none") + " · edges " +
        (a.edges.join(", ") || "none") + " · epoch " + a.epoch
      : "not placed: nobody publishes " + stream + " (the player waits for it)";
    const local = ((await peer.get("/api/v1/streams")).streams || []).find((x) => x.id === stream);
    document.getElementById("media-info").textContent = local ? mediaText(local) : "this node does not carry the stream now";
    peer.status("leader " + (view.leader || "none") + " · " + state.proto.toUpperCase() + " · updated " + new Date().toLocaleTimeString(), !view.leader);
  } catch (e) {
    if (!urlsDone) { renderURLs(null); urlsDone = true; }
    peer.status("this node does not answer: " + e.message, true);
  }
}

document.getElementById("title").textContent = stream;
document.title = "peer · " + stream;
document.querySelector('input[name=proto][value="' + state.proto + '"]').checked = true;
if (!(window.Hls && Hls.isSupported()) && nativeHLS) {
  document.getElementById("hls-impl").textContent = "native";
} else if (nativeHLS) {
  document.getElementById("native-choice").hidden = false;
}
document.getElementById("proto").addEventListener("change", (e) => {
  state.proto = e.target.value;
  const u = new URL(location.href);
  u.searchParams.set("proto", state.proto);
  history.replaceState(null, "", u);
  start();
});

refresh();
setInterval(refresh, 3000);
start();
