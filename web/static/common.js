// Shared by the demo page and the dashboard: settings kept in localStorage
// and calls to the HTTP API with the standard envelope. No page sends or
// keeps an API token: the demo page calls the API only when it is open, and
// the dashboard reads its data with the browser's own HTTP Basic login
// (security.dashboardToken).
(function () {
  'use strict';

  function load(key, def) {
    try {
      var v = window.localStorage.getItem(key);
      return v === null ? def : v;
    } catch (e) {
      return def;
    }
  }

  function save(key, value) {
    try {
      if (value === '' || value === null || value === undefined) {
        window.localStorage.removeItem(key);
      } else {
        window.localStorage.setItem(key, value);
      }
    } catch (e) { /* private mode: keep it in the field only */ }
  }

  // call POSTs (or GETs) an endpoint under /api/websocket/ and always
  // resolves to an envelope {code, msg, data}; network failures get code -1.
  function call(method, endpoint, opts) {
    opts = opts || {};
    var headers = { 'Accept': 'application/json' };
    if (opts.systemId) headers['systemId'] = opts.systemId;
    var init = { method: method, headers: headers, cache: 'no-store', credentials: 'same-origin' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body || {});
    }
    return fetch('/api/websocket/' + endpoint, init).then(function (r) {
      return r.json().catch(function () {
        return { code: -1, msg: 'HTTP ' + r.status + ' without a JSON body', data: null };
      }).then(function (env) {
        if (!env || typeof env.code !== 'number') {
          return { code: -1, msg: 'HTTP ' + r.status + ': unexpected answer', data: null };
        }
        env.status = r.status;
        return env;
      });
    }, function (err) {
      return { code: -1, msg: 'network error: ' + (err && err.message ? err.message : err), data: null };
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function clock(d) {
    d = d || new Date();
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function duration(sec) {
    sec = Math.max(0, Math.floor(sec));
    var d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600),
        m = Math.floor(sec % 3600 / 60), s = sec % 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + pad(m) + 'm';
    if (m > 0) return m + 'm ' + pad(s) + 's';
    return s + 's';
  }

  function num(n) {
    if (n === undefined || n === null || isNaN(n)) return '–';
    return Number(n).toLocaleString('en-US');
  }

  function rate(r) {
    if (r === null || r === undefined || isNaN(r)) return '–';
    if (r >= 100) return Math.round(r).toLocaleString('en-US');
    if (r >= 10) return r.toFixed(1);
    return r.toFixed(2).replace(/\.?0+$/, '') || '0';
  }

  // hue gives a stable color for a name (avatars, node markers).
  function hue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function metaContent(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.content : '';
  }

  // Links to a page the server does not serve are hidden.
  var pages = metaContent('gows-pages');
  if (pages.indexOf('demo=false') >= 0 && document.getElementById('navDemo')) {
    document.getElementById('navDemo').hidden = true;
  }
  if (pages.indexOf('dashboard=false') >= 0 && document.getElementById('navDashboard')) {
    document.getElementById('navDashboard').hidden = true;
  }
  // Settings of older versions of these pages may still hold an API token.
  save('gows.apiToken', '');

  window.GoWS = {
    apiOpen: metaContent('gows-api-open') === 'true',
    dashboardAccess: metaContent('gows-dashboard-access'),
    load: load,
    save: save,
    call: call,
    el: el,
    clock: clock,
    duration: duration,
    num: num,
    rate: rate,
    hue: hue
  };
})();
