// The demo page: one WebSocket connection to this server through the client
// library gows.js, a group to join through the HTTP API, and a live log of
// every frame that arrives.
(function () {
  'use strict';

  var G = window.GoWS;
  var $ = function (id) { return document.getElementById(id); };
  var MAX_LOG = 500;
  var MAX_RETRIES = 8;

  var state = {
    client: null,     // the GowsClient (gows.js)
    clientId: '',
    systemId: '',
    group: '',        // the group this client is in ('' when none)
    rejoin: '',       // group to join again after a reconnect
    mine: {}          // messageIds this page sent
  };

  // ---------- settings ----------
  var nick = G.load('gows.nickname', '');
  if (!nick) {
    nick = 'guest-' + Math.floor(1000 + Math.random() * 9000);
  }
  $('nickname').value = nick;
  $('systemId').value = G.load('gows.systemId', 'demo');
  $('group').value = G.load('gows.group', 'lobby');

  function nickname() { return $('nickname').value.trim() || 'guest'; }

  $('nickname').addEventListener('change', function () { G.save('gows.nickname', $('nickname').value.trim()); });
  $('group').addEventListener('change', function () { G.save('gows.group', $('group').value.trim()); });

  var mode = $('apiMode');
  if (G.apiOpen) {
    mode.className = 'badge open';
    mode.textContent = 'open: no token needed';
    mode.title = 'This server has no apiTokens configured: anyone who reaches it can call the API.';
  } else {
    mode.className = 'badge locked';
    mode.textContent = 'token required';
    mode.title = 'This server has apiTokens configured: only a backend holding one can call the API.';
    $('apiLocked').hidden = false;
  }

  // ---------- log ----------
  var logEl = $('log');
  var wrap = $('logWrap');

  function nearBottom() {
    return wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 80;
  }

  function append(li) {
    var stick = nearBottom();
    logEl.appendChild(li);
    while (logEl.children.length > MAX_LOG) logEl.removeChild(logEl.firstChild);
    $('empty').hidden = true;
    if (stick) wrap.scrollTop = wrap.scrollHeight;
  }

  function note(text, isError) {
    var li = G.el('li', 'note' + (isError ? ' error' : ''));
    li.appendChild(G.el('span', null, text));
    li.appendChild(G.el('span', 'time', G.clock()));
    append(li);
  }

  function shortId(id) {
    return id && id.length > 12 ? id.slice(0, 6) + '…' + id.slice(-4) : (id || '?');
  }

  function avatar(name) {
    var a = G.el('span', 'avatar', (name || '?').replace(/^[^A-Za-z0-9]+/, '').charAt(0).toUpperCase() || '?');
    a.style.background = 'hsl(' + G.hue(name || '?') + ', 55%, 52%)';
    return a;
  }

  function renderMessage(m) {
    var li = G.el('li', 'msg');
    li.dataset.code = String(m.code);
    li.dataset.messageId = m.messageId || '';
    if (state.mine[m.messageId]) li.classList.add('mine');
    var who = m.sendUserId || 'server';
    var data = m.data;
    var direct = data && typeof data === 'object' && data.direct === true;
    if (direct) li.classList.add('direct');

    var bubble = G.el('div', 'bubble');
    var meta = G.el('div', 'meta');
    meta.appendChild(G.el('span', 'who', who));
    if (direct) meta.appendChild(G.el('span', 'tag', 'to you'));
    if (m.code) meta.appendChild(G.el('span', 'tag', 'code ' + m.code));
    if (m.msg) meta.appendChild(G.el('span', 'tag', m.msg));
    var t = G.el('span', 'time', G.clock());
    t.title = 'messageId ' + (m.messageId || '');
    meta.appendChild(t);
    bubble.appendChild(meta);

    if (data && typeof data === 'object' && typeof data.text === 'string') {
      bubble.appendChild(G.el('div', 'text', data.text));
    } else if (typeof data === 'string') {
      bubble.appendChild(G.el('div', 'text', data));
    } else {
      bubble.appendChild(G.el('pre', null, JSON.stringify(data, null, 2)));
    }
    li.appendChild(avatar(who));
    li.appendChild(bubble);
    append(li);
  }

  function renderEvent(m) {
    var d = (m.data && typeof m.data === 'object') ? m.data : {};
    var kind = m.code === 1001 ? 'join' : m.code === 1003 ? 'move' : 'leave';
    var li = G.el('li', 'event ' + kind);
    li.dataset.code = String(m.code);
    li.dataset.clientId = d.clientId || '';
    li.dataset.group = d.groupName || '';
    var self = d.clientId && d.clientId === state.clientId;
    var span = G.el('span');
    var who = G.el('b', null, self ? 'You' : (d.userId || 'client ' + shortId(d.clientId)));
    who.title = 'clientId ' + (d.clientId || '');
    span.appendChild(who);
    var verb = kind === 'join' ? ' joined ' : kind === 'move' ? ' moved to another node, still in ' : ' left ';
    span.appendChild(document.createTextNode(verb + '#' + (d.groupName || '?')));
    li.appendChild(span);
    li.appendChild(G.el('span', 'time', G.clock()));
    append(li);
    if (d.groupName && d.groupName === state.group) refreshMembers();
  }

  $('clearBtn').addEventListener('click', function () {
    logEl.textContent = '';
    $('empty').hidden = false;
  });

  // ---------- status and controls ----------
  function setStatus(text, cls) {
    var s = $('status');
    s.textContent = text;
    s.className = 'pill ' + cls;
  }

  function render() {
    var online = !!state.clientId;
    $('clientId').textContent = state.clientId || '—';
    $('copyId').disabled = !online;
    // Without an open API the page cannot call it: it only listens.
    var api = online && G.apiOpen;
    $('joinBtn').disabled = !api;
    $('leaveBtn').disabled = !api || !state.group;
    $('pushSelf').disabled = !api;
    $('text').disabled = !api || !state.group;
    $('sendBtn').disabled = !api || !state.group;
    $('text').placeholder = state.group ? 'Message #' + state.group + ' as ' + nickname() : 'Join a group to chat';
    $('joinBtn').textContent = state.group && state.group !== $('group').value.trim() ? 'Switch group' : 'Join group';
    $('room').textContent = state.group ? '#' + state.group : 'Not in a group';
    if (!state.group) $('roomInfo').textContent = online ? 'join a group to chat' : '';
    renderCurl();
  }

  function renderCurl() {
    var sys = state.systemId || $('systemId').value.trim() || 'demo';
    var auth = !G.apiOpen ? "  -H \"Authorization: Bearer $TOKEN\" \\\n" : '';
    var head = "  -H 'Content-Type: application/json' -H 'systemId: " + sys + "' \\\n" + auth;
    var id = state.clientId || '<clientId>';
    var grp = state.group || $('group').value.trim() || 'lobby';
    $('curl').textContent =
      '# to this tab\n' +
      'curl -X POST ' + location.origin + '/api/websocket/send_to_client \\\n' + head +
      "  -d '{\"clientId\":\"" + id + "\",\"sendUserId\":\"backend\",\"data\":{\"text\":\"Hello from curl\"}}'\n\n" +
      '# to everyone in #' + grp + '\n' +
      'curl -X POST ' + location.origin + '/api/websocket/send_to_group \\\n' + head +
      "  -d '{\"groupName\":\"" + grp + "\",\"sendUserId\":\"backend\",\"data\":{\"text\":\"Hello, group\"}}'" +
      (G.apiOpen ? '' : '\n\n# this tab into #' + grp + '\n' +
        'curl -X POST ' + location.origin + '/api/websocket/bind_to_group \\\n' + head +
        "  -d '{\"clientId\":\"" + id + "\",\"groupName\":\"" + grp + "\"}'");
    $('registerCurl').textContent =
      'curl -X POST ' + location.origin + '/api/websocket/register \\\n' +
      "  -H 'Content-Type: application/json' \\\n" + auth +
      "  -d '{\"systemId\":\"" + sys + "\"}'";
  }

  $('group').addEventListener('input', render);
  $('nickname').addEventListener('input', render);

  $('copyId').addEventListener('click', function () {
    var id = state.clientId;
    if (!id) return;
    var done = function () {
      $('copyId').textContent = 'Copied';
      setTimeout(function () { $('copyId').textContent = 'Copy'; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(id).then(done, function () {});
    } else {
      var r = document.createRange();
      r.selectNodeContents($('clientId'));
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
    }
  });

  // ---------- HTTP API ----------
  function api(endpoint, body) {
    return G.call('POST', endpoint, { systemId: state.systemId, body: body });
  }

  function apiError(what, env) {
    var hint = '';
    if (env.code === 10005) hint = ' This server\'s API needs a token: call it from your backend.';
    note(what + ' failed: ' + env.msg + (env.code > 0 ? ' (' + env.code + ')' : '') + hint, true);
  }

  function refreshMembers() {
    var g = state.group;
    if (!g) return;
    api('get_online_list', { groupName: g }).then(function (env) {
      if (g !== state.group) return;
      if (env.code === 0 && env.data) {
        var n = env.data.count;
        $('roomInfo').textContent = n + (n === 1 ? ' member online' : ' members online');
      }
    });
  }

  function join(g) {
    if (!state.clientId || !g) return Promise.resolve();
    var prev = state.group;
    var leaving = prev && prev !== g ? leave(true) : Promise.resolve();
    return leaving.then(function () {
      return api('bind_to_group', { clientId: state.clientId, groupName: g, userId: nickname(), extend: '' });
    }).then(function (env) {
      if (env.code !== 0) { apiError('Joining #' + g, env); return; }
      state.group = g;
      state.rejoin = g;
      G.save('gows.group', g);
      render();
      refreshMembers();
      $('text').focus();
    });
  }

  function leave(quiet) {
    var g = state.group;
    if (!g || !state.clientId) return Promise.resolve();
    return api('unbind_from_group', { clientId: state.clientId, groupName: g }).then(function (env) {
      if (env.code !== 0 && env.code !== 10006) { apiError('Leaving #' + g, env); return; }
      state.group = '';
      state.rejoin = '';
      if (!quiet) note('You left #' + g);
      render();
    });
  }

  $('joinBtn').addEventListener('click', function () {
    var g = $('group').value.trim();
    if (!g) { $('group').focus(); return; }
    if (g === state.group) {
      // Re-binding updates the nickname shown in later events; nothing is sent.
      api('bind_to_group', { clientId: state.clientId, groupName: g, userId: nickname(), extend: '' });
      return;
    }
    join(g);
  });
  $('leaveBtn').addEventListener('click', function () { leave(false); });

  $('composer').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = $('text').value;
    if (!text.trim() || !state.group) return;
    $('text').value = '';
    var g = state.group;
    api('send_to_group', { groupName: g, sendUserId: nickname(), data: { text: text } }).then(function (env) {
      if (env.code !== 0) { apiError('Sending to #' + g, env); $('text').value = text; return; }
      var id = env.data && env.data.messageId;
      if (id) {
        state.mine[id] = true;
        // The push can arrive before this answer: mark it now.
        var li = logEl.querySelector('li[data-message-id="' + CSS.escape(id) + '"]');
        if (li) li.classList.add('mine');
      }
    });
  });

  $('pushSelf').addEventListener('click', function () {
    api('send_to_client', {
      clientId: state.clientId,
      sendUserId: 'demo page',
      data: { text: 'Hello ' + nickname() + ', this came from POST /api/websocket/send_to_client.', direct: true }
    }).then(function (env) {
      if (env.code !== 0) apiError('Pushing to this tab', env);
    });
  });

  // ---------- WebSocket (gows.js) ----------
  // The connection is a GowsClient: it reconnects with backoff and jitter,
  // resumes the session when the server runs sessions, and acks the frames
  // that ask for it. This page only shows what happens.
  function connect() {
    if (state.client) {
      var old = state.client;
      state.client = null;
      old.close(1000, 'reconnect');
    }
    var sys = $('systemId').value.trim() || 'demo';
    if (sys !== state.systemId) {
      state.rejoin = '';
    }
    state.systemId = sys;
    G.save('gows.systemId', sys);
    state.clientId = '';
    state.group = '';
    render();
    setStatus('Connecting…', 'warn');

    var c;
    try {
      c = new window.gows.GowsClient({ systemId: sys, initialDelay: 500, maxDelay: 15000, maxRetries: MAX_RETRIES });
    } catch (e) {
      note('Cannot open a WebSocket: ' + e.message, true);
      setStatus('Disconnected', 'bad');
      return;
    }
    state.client = c;
    var refused = 0;     // the error code of a refused welcome
    var stopped = false; // this page said why the connection ended for good
    var mine = function (fn) {
      return function (arg) { if (c === state.client) fn(arg); };
    };

    c.on('state', mine(function (s) {
      if (s === 'connecting') {
        setStatus('Connecting…', 'warn');
      } else if (s === 'reconnecting') {
        refused = 0;
        setStatus('Reconnecting…', 'warn');
      } else if (s === 'closed' && !stopped) {
        stopped = true;
        setStatus('Disconnected', 'bad');
        note('Gave up reconnecting after ' + MAX_RETRIES + ' tries. Press Reconnect to try again.', true);
      }
    }));

    c.on('welcome', mine(function (w) {
      state.clientId = w.clientId;
      setStatus('Connected', 'ok');
      note((w.resumed ? 'Resumed the session on system "' : 'Connected to system "') + sys + '" as ' + shortId(state.clientId));
      if (w.resumed && state.rejoin) {
        // A resumed session kept its groups.
        state.group = state.rejoin;
        render();
        refreshMembers();
        return;
      }
      render();
      if (state.rejoin) join(state.rejoin);
    }));

    c.on('error', mine(function (e) {
      if (e && typeof e.code === 'number' && !(e instanceof Error)) {
        // The welcome frame refused this client; the close follows.
        refused = e.code;
        if (e.code !== 10003) note('The server refused the connection: ' + e.msg + ' (' + e.code + ')', true);
        return;
      }
      var msg = e && e.message ? e.message : String(e);
      if (msg === 'gows: WebSocket error') return; // the close says more
      note(msg, true);
      if (!/^gows: /.test(msg)) console.error(e); // a fault of this page
    }));

    c.on('message', mine(renderMessage));
    c.on('join', mine(function (d) { renderEvent({ code: 1001, data: d }); }));
    c.on('leave', mine(function (d) { renderEvent({ code: 1002, data: d }); }));
    c.on('move', mine(function (d) { renderEvent({ code: 1003, data: d }); }));

    c.on('close', mine(function (ev) {
      var was = state.clientId;
      state.clientId = '';
      state.group = '';
      render();
      var end = function (status) {
        stopped = true;
        setStatus(status, 'bad');
        if (!ev.final) c.close();
      };
      if (refused === 10003 || ev.code === 4004) {
        // A browser never creates a tenant: say how a backend registers it.
        end('Not registered');
        note('System "' + sys + '" is not registered. Register it from your backend (the ' +
          'command is under "Register a system" on the left), then press Reconnect.', true);
        $('registerHelp').open = true;
        return;
      }
      if (refused || (ev.code >= 4000 && ev.code < 5000)) {
        end('Refused');
        if (ev.code === 4401) note('This server requires a connect token (JWT) for WebSocket connections.', true);
        return;
      }
      if (ev.code === 1000 && was) {
        end('Closed by server');
        note('The server closed this connection (close_client). Press Reconnect for a new one.', true);
        return;
      }
      if (ev.final) {
        end('Disconnected');
        note('Disconnected' + (ev.code ? ' (' + ev.code + ')' : '') + '. Press Reconnect for a new connection.', true);
        return;
      }
      var why = ev.code === 1008 ? 'closed as a slow consumer' :
        ev.code === 1001 ? 'the server is going away' :
        'connection lost' + (ev.code ? ' (' + ev.code + ')' : '');
      note('Disconnected: ' + why + '. Reconnecting…', true);
    }));

    c.connect();
  }

  // The page's connection, for those who look (the browser console, tests).
  window.GoWSDemo = { client: function () { return state.client; } };

  // A person asking again gets a fresh try: a new client, its retries at 0.
  function reconnect() {
    connect();
  }
  $('connectBtn').addEventListener('click', reconnect);
  $('systemId').addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter') reconnect();
  });
  $('group').addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !$('joinBtn').disabled) $('joinBtn').click();
  });

  render();
  connect();
})();
