/*
 * gows.js: the browser and Node client of go-websocket. No dependencies.
 *
 *   <script src="/gows.js"></script>            -> window.gows.GowsClient
 *   import { GowsClient } from "/gows.mjs";     -> ES module (browsers)
 *   const { GowsClient } = require("./gows.js"); -> Node (CommonJS)
 *
 *   const c = new GowsClient({ systemId: "my-system" });
 *   c.on("message", (m) => console.log(m.data));
 *   c.on("state", (s) => console.log("connection", s));
 *   c.connect();
 *
 * It reconnects with exponential backoff and jitter, resumes its session
 * (lastSeq) when the server runs sessions, acks frames that ask for it, and
 * sends upstream messages with send().
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else {
    root.gows = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  var CODE_JOIN = 1001, CODE_LEAVE = 1002, CODE_MOVE = 1003;
  // Close codes after which reconnecting cannot help (the server refused
  // this client for good) or was not wanted (a normal close).
  var FINAL = { 1000: true, 4001: true, 4003: true, 4004: true, 4401: true };

  function GowsClient(opts) {
    if (!(this instanceof GowsClient)) return new GowsClient(opts);
    opts = opts || {};
    if (!opts.systemId) throw new Error("gows: systemId is required");
    this.opts = {
      url: opts.url || defaultURL(),
      systemId: opts.systemId,
      token: opts.token || "",
      protocols: opts.protocols,
      WebSocket: opts.WebSocket || (typeof WebSocket !== "undefined" ? WebSocket : null),
      reconnect: opts.reconnect !== false,
      initialDelay: opts.initialDelay > 0 ? opts.initialDelay : 500,
      maxDelay: opts.maxDelay > 0 ? opts.maxDelay : 30000,
      maxRetries: opts.maxRetries >= 0 ? opts.maxRetries : Infinity,
      autoAck: opts.autoAck !== false,
      resume: opts.resume !== false,
      random: opts.random || Math.random
    };
    if (!this.opts.WebSocket) throw new Error("gows: no WebSocket implementation (in Node pass { WebSocket: require('ws') })");
    this.state = "idle";
    this.clientId = "";
    this.resumeToken = "";
    this.lastSeq = 0;
    this.attempt = 0;
    this._handlers = {};
    this._ws = null;
    this._timer = null;
    this._welcomed = false;
  }

  function defaultURL() {
    if (typeof location !== "undefined" && location.host) {
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
    }
    return "ws://127.0.0.1:7800";
  }

  GowsClient.prototype.on = function (event, fn) {
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    var self = this;
    return function () { self.off(event, fn); };
  };

  GowsClient.prototype.off = function (event, fn) {
    var list = this._handlers[event];
    if (!list) return;
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  };

  GowsClient.prototype._emit = function (event, arg) {
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i](arg); } catch (e) { if (event !== "error") this._emit("error", e); }
    }
  };

  GowsClient.prototype._setState = function (s) {
    if (this.state === s) return;
    this.state = s;
    this._emit("state", s);
  };

  // wsURL is the connect URL, with the resume parameters when a session
  // can be resumed.
  GowsClient.prototype.wsURL = function () {
    var base = this.opts.url.replace(/^http/, "ws").replace(/\/+$/, "");
    var u = base + "/api/websocket/ws?systemId=" + encodeURIComponent(this.opts.systemId);
    if (this.opts.token) u += "&token=" + encodeURIComponent(this.opts.token);
    if (this.opts.resume && this.resumeToken) {
      u += "&resume=" + encodeURIComponent(this.resumeToken) + "&lastSeq=" + this.lastSeq;
    }
    return u;
  };

  GowsClient.prototype.connect = function () {
    if (this.state === "open" || this.state === "connecting") return this;
    clearTimeout(this._timer);
    this._closedByUser = false;
    this._open();
    return this;
  };

  GowsClient.prototype._open = function () {
    var self = this;
    this._setState(this.attempt > 0 ? "reconnecting" : "connecting");
    this._welcomed = false;
    var ws;
    try {
      ws = this.opts.protocols ? new this.opts.WebSocket(this.wsURL(), this.opts.protocols) : new this.opts.WebSocket(this.wsURL());
    } catch (e) {
      this._emit("error", e);
      this._retry();
      return;
    }
    this._ws = ws;
    ws.onmessage = function (ev) {
      if (ws !== self._ws) return;
      var text = typeof ev.data === "string" ? ev.data : String(ev.data);
      self._frame(text);
    };
    ws.onclose = function (ev) {
      if (ws !== self._ws) return;
      self._ws = null;
      // final: no reconnect follows (a refusal, a normal close, close()
      // or reconnect off). A "close" handler may call close() to stop
      // reconnecting after any other code.
      var final = !!(self._closedByUser || !self.opts.reconnect || FINAL[ev.code]);
      var info = { code: ev.code, reason: ev.reason || "", final: final };
      self._emit("close", info);
      if (final || self._closedByUser) {
        self._setState("closed");
        return;
      }
      self._retry();
    };
    ws.onerror = function (ev) {
      if (ws === self._ws) self._emit("error", ev && ev.error ? ev.error : new Error("gows: WebSocket error"));
    };
  };

  // delay is the next reconnect delay: exponential, capped, with jitter
  // over its upper half so that many clients do not come back together.
  GowsClient.prototype.delay = function () {
    var d = Math.min(this.opts.maxDelay, this.opts.initialDelay * Math.pow(2, this.attempt));
    return Math.round(d / 2 + this.opts.random() * d / 2);
  };

  GowsClient.prototype._retry = function () {
    if (this.attempt >= this.opts.maxRetries) {
      this._setState("closed");
      return;
    }
    var self = this, d = this.delay();
    this.attempt++;
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this.attempt, delay: d });
    this._timer = setTimeout(function () { self._open(); }, d);
  };

  GowsClient.prototype._frame = function (text) {
    var f;
    try { f = JSON.parse(text); } catch (e) { this._emit("error", new Error("gows: frame is not JSON: " + text.slice(0, 100))); return; }
    if (!this._welcomed) {
      this._welcomed = true;
      if (f.code !== 0 || !f.data || !f.data.clientId) {
        this._emit("error", { code: f.code, msg: f.msg });
        return; // the server closes with a 4xxx code next
      }
      var d = f.data;
      var resumed = d.resumed === true;
      if (!resumed) this.lastSeq = 0;
      this.resumeToken = d.resumeToken || "";
      this.clientId = d.clientId;
      this.attempt = 0;
      this._setState("open");
      this._emit("welcome", { clientId: d.clientId, resumed: resumed, previousClientId: d.previousClientId || "" });
      return;
    }
    if (typeof f.seq === "number") {
      if (f.seq <= this.lastSeq) return; // already seen before a resume
      this.lastSeq = f.seq;
    }
    var m = { messageId: f.messageId, sendUserId: f.sendUserId, code: f.code, msg: f.msg, data: f.data, seq: f.seq, ack: f.ack === true };
    switch (f.code) {
      case CODE_JOIN: this._emit("join", f.data); break;
      case CODE_LEAVE: this._emit("leave", f.data); break;
      case CODE_MOVE: this._emit("move", f.data); break;
      default: this._emit("message", m);
    }
    if (m.ack && this.opts.autoAck) this.ack(m.messageId);
  };

  // ack answers a frame that carried "ack": true (done for you unless
  // autoAck is false).
  GowsClient.prototype.ack = function (messageId) {
    return this._send(JSON.stringify({ ack: messageId }));
  };

  // send posts an upstream message: the server hands it to the system's
  // webhook as a "message" event. It returns false when not connected.
  GowsClient.prototype.send = function (value) {
    return this._send(JSON.stringify({ upstream: value === undefined ? null : value }));
  };

  GowsClient.prototype._send = function (text) {
    var ws = this._ws;
    if (!ws || this.state !== "open" || ws.readyState !== 1) return false;
    ws.send(text);
    return true;
  };

  // close ends the connection and stops reconnecting.
  GowsClient.prototype.close = function (code, reason) {
    this._closedByUser = true;
    clearTimeout(this._timer);
    var ws = this._ws;
    if (ws) {
      try { ws.close(code || 1000, reason || ""); } catch (e) { /* already closing */ }
    } else {
      this._setState("closed");
    }
  };

  return { GowsClient: GowsClient, version: "0.2.0" };
});
