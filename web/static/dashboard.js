// The operator dashboard: polls GET /api/websocket/stats and redraws in place.
// Message rates are computed here from successive messagesPushed counters.
(function () {
  'use strict';

  var G = window.GoWS;
  var $ = function (id) { return document.getElementById(id); };
  var POLL_MS = 1000;
  var SPARK = 60; // samples in the rate sparkline

  var prev = null;        // last answer: {time (ms), pushed, perNode: {id: pushed}}
  var rates = [];         // cluster rate history
  var nodeRates = {};     // nodeId -> last rate
  var timer = 0;
  var inFlight = false;
  var failures = 0;

  // The page never asks for a token: with security.dashboardToken set the
  // browser logged in (HTTP Basic) before it loaded the page and sends the
  // same credentials with every poll.

  function setLive(text, cls) {
    var s = $('live');
    s.textContent = text;
    s.className = 'pill ' + cls;
  }

  function showAlert(text) {
    var a = $('alert');
    a.textContent = text || '';
    a.className = text ? 'alert' : 'alert hidden';
  }

  function setText(id, v) {
    var e = $(id);
    if (e.textContent !== v) e.textContent = v;
  }

  function td(text, cls) { return G.el('td', cls, text); }

  function emptyRow(tbody, cols, text) {
    tbody.textContent = '';
    var tr = G.el('tr', 'emptyrow');
    var c = td(text);
    c.colSpan = cols;
    tr.appendChild(c);
    tbody.appendChild(tr);
  }

  function computeRates(d) {
    var t = Date.parse(d.time);
    if (isNaN(t)) t = Date.now();
    var per = {};
    d.nodes.forEach(function (n) { per[n.nodeId] = n.messagesPushed; });
    var total = null;
    if (prev && t > prev.time) {
      var dt = (t - prev.time) / 1000;
      total = 0;
      var any = false;
      d.nodes.forEach(function (n) {
        var p = prev.perNode[n.nodeId];
        if (p === undefined || n.messagesPushed < p) { nodeRates[n.nodeId] = null; return; }
        var r = (n.messagesPushed - p) / dt;
        nodeRates[n.nodeId] = r;
        total += r;
        any = true;
      });
      if (!any) total = null;
    }
    prev = { time: t, perNode: per };
    if (total !== null) {
      rates.push(total);
      if (rates.length > SPARK) rates.shift();
    }
    return total;
  }

  function drawSpark() {
    var svg = $('spark');
    var line = svg.querySelector('polyline');
    var area = svg.querySelector('polygon');
    if (rates.length < 2) { line.setAttribute('points', ''); area.setAttribute('points', ''); return; }
    var max = Math.max.apply(null, rates.concat([1]));
    // Spread the samples over the width until the window is full.
    var step = 60 / (Math.max(rates.length, 10) - 1);
    var x0 = 60 - (rates.length - 1) * step;
    var pts = rates.map(function (r, i) {
      return (x0 + i * step).toFixed(2) + ',' + (32 - (r / max) * 30).toFixed(2);
    });
    line.setAttribute('points', pts.join(' '));
    area.setAttribute('points', x0.toFixed(2) + ',34 ' + pts.join(' ') + ' 60,34');
  }

  function alarm(id, v) {
    $(id).classList.toggle('alarm', v > 0);
  }

  function render(d) {
    var t = d.totals;
    var rate = computeRates(d);
    setText('totalNodes', G.num(t.nodes));
    setText('nodesSub', t.unreachable > 0 ? t.unreachable + ' unreachable' : 'all answering');
    $('nodesSub').classList.toggle('bad', t.unreachable > 0);
    setText('totalConnections', G.num(t.connections));
    var nsys = Object.keys(t.systems).length;
    setText('connSub', nsys + (nsys === 1 ? ' system' : ' systems') + ' connected');
    setText('totalGroups', G.num(t.groups));
    setText('groupsSub', t.nodes > 1 ? 'with members, summed over nodes' : 'with at least one member');
    setText('msgRate', rate === null ? '–' : G.rate(rate));
    setText('totalPushed', G.num(t.messagesPushed));
    setText('totalDropped', G.num(t.messagesDropped));
    setText('totalSlow', G.num(t.slowConsumerCloses));
    setText('totalRPC', G.num(t.rpcErrors));
    alarm('tileSlow', t.slowConsumerCloses);
    alarm('tileRPC', t.rpcErrors);
    drawSpark();

    // nodes
    var tb = $('nodes');
    tb.textContent = '';
    d.nodes.forEach(function (n, i) {
      var tr = G.el('tr');
      tr.dataset.nodeId = n.nodeId;
      var c = G.el('td');
      c.appendChild(G.el('span', 'dot'));
      c.appendChild(G.el('span', 'mono', n.nodeId));
      if (i === 0) {
        var you = G.el('span', 'you', 'this node');
        you.title = 'The node that answered this page';
        c.appendChild(you);
      }
      tr.appendChild(c);
      tr.appendChild(td(n.httpAddr || '–', 'mono'));
      var up = td(G.duration(n.uptimeSeconds), 'num');
      up.title = 'started ' + new Date(n.startedAt).toLocaleString();
      tr.appendChild(up);
      tr.appendChild(td(G.num(n.connections), 'num'));
      tr.appendChild(td(G.num(n.groups), 'num'));
      tr.appendChild(td(G.rate(nodeRates[n.nodeId]), 'num'));
      tr.appendChild(td(G.num(n.messagesPushed), 'num'));
      tr.appendChild(td(G.num(n.messagesDropped), 'num'));
      tr.appendChild(td(G.num(n.slowConsumerCloses), 'num'));
      tr.appendChild(td(G.num(n.rpcErrors), 'num'));
      tb.appendChild(tr);
    });
    if (!d.nodes.length) emptyRow(tb, 10, 'No node answered.');

    // connections per system, and per node when there are several
    var multi = d.nodes.length > 1;
    var head = $('sysHead');
    head.textContent = '';
    head.appendChild(G.el('th', null, 'System'));
    if (multi) {
      d.nodes.forEach(function (n) {
        var th = G.el('th', 'num', n.httpAddr || n.nodeId);
        th.title = 'node ' + n.nodeId;
        head.appendChild(th);
      });
    }
    head.appendChild(G.el('th', 'num', 'Total'));
    var sys = Object.keys(t.systems).sort(function (a, b) {
      return (t.systems[b] - t.systems[a]) || (a < b ? -1 : a > b ? 1 : 0);
    });
    var stb = $('systems');
    stb.textContent = '';
    var max = 1;
    sys.forEach(function (s) { max = Math.max(max, t.systems[s]); });
    sys.forEach(function (s) {
      var tr = G.el('tr');
      tr.dataset.system = s;
      var name = G.el('td');
      name.appendChild(G.el('span', 'mono', s));
      var bar = G.el('div', 'bar');
      var fill = G.el('span');
      fill.style.width = Math.max(2, Math.round(t.systems[s] / max * 100)) + '%';
      bar.appendChild(fill);
      name.appendChild(bar);
      tr.appendChild(name);
      if (multi) {
        d.nodes.forEach(function (n) { tr.appendChild(td(G.num(n.systems[s] || 0), 'num')); });
      }
      tr.appendChild(td(G.num(t.systems[s]), 'num'));
      stb.appendChild(tr);
    });
    if (!sys.length) emptyRow(stb, multi ? d.nodes.length + 2 : 2, 'No client is connected.');

    // unreachable
    var utb = $('unreachable');
    utb.textContent = '';
    d.unreachable.forEach(function (id) {
      var tr = G.el('tr');
      var c = G.el('td');
      c.appendChild(G.el('span', 'dot bad'));
      c.appendChild(G.el('span', 'mono', id));
      c.appendChild(G.el('span', 'sub', 'registered in etcd, did not answer in time'));
      tr.appendChild(c);
      utb.appendChild(tr);
    });
    if (!d.unreachable.length) emptyRow(utb, 1, 'None: every registered node answered.');
  }

  function poll() {
    clearTimeout(timer);
    if (inFlight) return;
    inFlight = true;
    G.call('GET', 'stats', {}).then(function (env) {
      inFlight = false;
      if (env.code === 0 && env.data) {
        failures = 0;
        showAlert('');
        render(env.data);
        setLive('Live', 'ok');
        setText('updated', 'Updated ' + G.clock() + ' · ' + G.num(env.data.totals.nodes) +
          (env.data.totals.nodes === 1 ? ' node' : ' nodes'));
      } else if (env.code === 10005) {
        setLive('Locked', 'bad');
        showAlert(G.dashboardAccess === 'basic' ?
          'The dashboard password was refused: reload the page to log in again.' :
          'This server\'s API needs a token, and the dashboard never asks for one. ' +
          'Set [security] dashboardToken (a separate, read-only password) and reload: ' +
          'the browser then asks for it once.');
        if (!prev) {
          setText('updated', 'No access to GET /api/websocket/stats');
          ['nodes', 'systems', 'unreachable'].forEach(function (id) {
            var tb = $(id);
            emptyRow(tb, tb.parentNode.querySelectorAll('th').length || 1, 'Set [security] dashboardToken to see the stats.');
          });
        }
      } else {
        failures++;
        setLive(failures > 2 ? 'Offline' : 'Retrying…', failures > 2 ? 'bad' : 'warn');
        if (failures > 2) showAlert('Cannot read the stats: ' + env.msg);
      }
      // Without access, ask less often: the answer will not change by itself.
      timer = setTimeout(poll, env.code === 10005 ? 5 * POLL_MS : POLL_MS);
    });
  }

  poll();
})();
