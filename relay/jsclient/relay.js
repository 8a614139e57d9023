/*!
 * relay.js: the browser SDK of the relay (Data Relay Center wire protocol, version 1).
 *
 * No dependencies, no build step. Load it either way:
 *
 *   <script src="/sdk/relay.js"></script>          classic script: defines
 *                                                  window.RelayClient, window.DRCClient
 *                                                  and window.RelayError
 *   import { RelayClient } from '/sdk/relay.mjs';  ES module (the same file with an
 *                                                  export line added by the relay)
 *
 * Two APIs share one connection object:
 * - the DRC browser API (new DRCClient(url), addEventListener, JoinChannel,
 *   SendCommand, ...), with the same names, argument order and events as
 *   CubicleSoft's drc_client.js, so existing pages keep working;
 * - a promise API (join, leave, send, broadcast, grant, setExtra, on, close).
 *
 * On top of both: reconnect with exponential backoff and jitter (close code
 * 1012, "service restart", reconnects at once), automatic rejoin of every
 * channel the page was in (events "rejoined", "lost" and "restored"), and a
 * bounded queue for requests made while disconnected.
 */
var RelaySDK = (function () {
  'use strict';

  var VERSION = '1.0.0';

  // CLOSE_SERVICE_RESTART is the WebSocket close code a relay sends when it
  // shuts down to restart; the client reconnects promptly instead of backing off.
  var CLOSE_SERVICE_RESTART = 1012;

  var DEFAULTS = {
    autoConnect: true,
    reconnect: true,
    minDelay: 500,
    maxDelay: 30000,
    factor: 2,
    restartDelay: 250,
    rejoin: true,
    maxQueue: 256,
    requestTimeout: 30000,
    debug: false,
    WebSocket: null
  };

  // Error codes that a given kind of request can never receive; used to tell
  // which outstanding request an error frame answers (DRC errors carry no
  // request id, but the server answers each connection's requests in order).
  var NOT_FOR = {
    join: set('missing_to invalid_to missing_channel invalid_channel invalid_id missing_invalid_clientmode missing_invalid_extra extra_too_large'),
    grant: set('missing_to invalid_to missing_channel invalid_channel invalid_id max_channel_limit_reached channel_full token_too_large'),
    leave: set('missing_invalid_channel missing_invalid_protocol missing_to invalid_to max_channel_limit_reached missing_invalid_clientmode missing_invalid_extra invalid_id extra_too_large channel_full token_too_large'),
    setextra: set('missing_invalid_channel missing_invalid_protocol missing_to invalid_to max_channel_limit_reached missing_invalid_clientmode channel_full token_too_large')
  };

  // How many answered-by-silence requests (direct sends) are remembered for
  // error attribution.
  var MAX_SILENT = 64;

  function set(words) {
    var s = {};
    words.split(' ').forEach(function (w) { s[w] = true; });
    return s;
  }

  function noop() {}

  function key(name, protocol) {
    return String(name) + '\u0000' + String(protocol);
  }

  // RelayError is the rejection reason of every promise in this SDK. code is
  // the DRC errorcode from the relay (for example "access_denied") or one of
  // the client's own: "queue_full", "disconnected", "closed", "timeout",
  // "channel_lost".
  function RelayError(code, message, frame) {
    var e = new Error(message || code);
    Object.setPrototypeOf(e, RelayError.prototype);
    e.name = 'RelayError';
    e.code = code;
    e.frame = frame || null;
    e.channel = frame && typeof frame.channel === 'number' ? frame.channel : 0;
    return e;
  }
  RelayError.prototype = Object.create(Error.prototype, {
    constructor: { value: RelayError, writable: true, configurable: true }
  });

  function errorFrame(code, text) {
    return { channel: 0, success: false, error: text, errorcode: code };
  }

  function wsURL(url) {
    var loc = typeof location !== 'undefined' ? location : null;
    if (url === undefined || url === null || url === '') {
      if (!loc) throw new TypeError('RelayClient: a URL is required');
      url = '/';
    }
    url = String(url);
    if (loc && !/^[a-z][a-z0-9+.-]*:/i.test(url)) url = new URL(url, loc.href).href;
    if (/^https:/i.test(url)) return 'wss:' + url.slice(6);
    if (/^http:/i.test(url)) return 'ws:' + url.slice(5);
    return url;
  }

  function normalizeClients(clients) {
    // The reference server sends [] for an empty object.
    if (!clients || Array.isArray(clients)) return {};
    return clients;
  }

  // RelayClient is one WebSocket connection to a relay. See relay.d.ts for
  // the documented surface.
  function RelayClient(url, options) {
    if (!(this instanceof RelayClient)) throw new TypeError('RelayClient must be called with new');
    var opts = {};
    var k;
    for (k in DEFAULTS) opts[k] = DEFAULTS[k];
    if (options) for (k in options) if (options[k] !== undefined) opts[k] = options[k];

    this.url = wsURL(url);
    this.debug = !!opts.debug;
    this._opts = opts;
    this._triggers = {};
    this._ws = null;
    this._state = 'idle'; // idle, connecting, restoring, ready, waiting, closed
    this._everOpen = false;
    this._attempt = 0;
    this._timer = null;
    this._queue = [];      // requests waiting for a ready connection
    this._pending = [];    // requests sent on this connection, awaiting an answer
    this._channels = {};   // channel number -> own JOINED frame (legacy GetChannels)
    this._clientId = false;
    this._members = {};    // key(name, protocol) -> membership to restore after a reconnect
    this._restore = null;  // progress of the rejoin after a reconnect
    this._onOnline = this._online.bind(this);

    if (opts.autoConnect) this.connect();
  }

  var P = RelayClient.prototype;

  Object.defineProperty(P, 'id', {
    get: function () { return this._clientId; }
  });
  Object.defineProperty(P, 'state', {
    get: function () { return this._state; }
  });
  Object.defineProperty(P, 'connected', {
    get: function () { return this._state === 'ready' || this._state === 'restoring'; }
  });

  // ---- events -------------------------------------------------------------

  P.addEventListener = function (eventname, callback) {
    if (typeof callback !== 'function') return;
    if (!this._triggers[eventname]) this._triggers[eventname] = [];
    this._triggers[eventname].push(callback);
  };

  P.removeEventListener = function (eventname, callback) {
    var list = this._triggers[eventname];
    if (!list) return;
    var i = list.indexOf(callback);
    if (i >= 0) list.splice(i, 1);
  };

  P.on = function (eventname, callback) {
    var self = this;
    self.addEventListener(eventname, callback);
    return function () { self.removeEventListener(eventname, callback); };
  };

  P.off = P.removeEventListener;

  P._dispatch = function (eventname, params) {
    var list = this._triggers[eventname];
    if (!list) return;
    list.slice().forEach(function (callback) {
      try {
        callback.call(this, params);
      } catch (err) {
        // A failing listener must not break the connection; surface it.
        setTimeout(function () { throw err; }, 0);
      }
    }, this);
  };

  P._log = function () {
    if (!this.debug) return;
    var args = Array.prototype.slice.call(arguments);
    args.unshift('[RelayClient]');
    console.log.apply(console, args);
  };

  // ---- connection ---------------------------------------------------------

  P.connect = function () {
    if (this._state === 'connecting' || this._state === 'restoring' || this._state === 'ready') return;
    clearTimeout(this._timer);
    this._timer = null;
    if (this._state === 'idle' || this._state === 'closed') {
      if (typeof window !== 'undefined' && window.addEventListener) window.addEventListener('online', this._onOnline);
    }
    this._open();
  };

  P._open = function () {
    var Ctor = this._opts.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    if (!Ctor) throw new Error('RelayClient: no WebSocket implementation');
    var self = this;
    var ws = new Ctor(this.url);
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._state = 'connecting';

    ws.addEventListener('open', function () {
      if (self._ws !== ws) return;
      self._onOpen();
    });
    ws.addEventListener('message', function (e) {
      if (self._ws !== ws) return;
      self._onFrame(e.data);
    });
    ws.addEventListener('close', function (e) {
      if (self._ws !== ws) return;
      self._onClose(e.code, e.reason);
    });
    // 'error' is always followed by 'close', which does the work.
  };

  P._online = function () {
    if (this._state === 'waiting') {
      this._log('browser is online again, reconnecting now');
      this._attempt = 0;
      this.connect();
    }
  };

  P._onOpen = function () {
    var reconnect = this._everOpen;
    this._everOpen = true;
    this._attempt = 0;
    this._log('connected to', this.url);

    var members = [];
    if (this._opts.rejoin) {
      for (var k in this._members) members.push(this._members[k]);
    }
    if (members.length > 0) this._state = 'restoring'; // page calls made in 'connect' wait for the rejoin
    this._dispatch('connect', { reconnect: reconnect });
    if (this._state !== 'restoring' && this._state !== 'connecting') return; // closed by a listener

    if (members.length === 0) {
      this._state = 'ready';
      if (reconnect) this._dispatch('restored', { rejoined: [], lost: [] });
      this._flush();
      return;
    }

    var r = { left: members.length, rejoined: [], lost: [] };
    this._state = 'restoring';
    this._restore = r;
    var self = this;
    members.forEach(function (m) { self._rejoin(r, m); });
  };

  // _rejoin joins membership m again, first with the token it last used
  // (a grant token is valid again for 30 s after its member disconnected),
  // then, if that is refused and the page gave a getToken function, once
  // with a fresh token.
  P._rejoin = function (r, m) {
    var self = this;
    var previous = m.channel;
    var fresh = false;
    var attempt = function (token) {
      if (self._restore !== r) return; // the connection closed meanwhile
      var msg = { cmd: 'JOIN', channel: m.name, protocol: m.protocol };
      if (token) msg.token = token;
      if (m.ipauth === false) msg.ipauth = false;
      self._transmit({
        kind: 'join', msg: msg, name: m.name, protocol: m.protocol, rejoin: true,
        resolve: function (frame) {
          m.token = token;
          self._restored(r, m, previous, frame, null);
        },
        reject: function (err) {
          if (!fresh && m.getToken && err.code === 'access_denied') {
            fresh = true;
            self._freshToken(m).then(attempt, function (e2) { self._restored(r, m, previous, null, e2); });
            return;
          }
          self._restored(r, m, previous, null, err);
        }
      });
    };
    attempt(m.token);
  };

  P._freshToken = function (m) {
    return Promise.resolve().then(function () { return m.getToken(m.name, m.protocol); }).then(function (token) {
      if (!token) throw RelayError('access_denied', 'getToken returned no token');
      return token;
    });
  };

  P._restored = function (r, m, previous, frame, err) {
    if (this._restore !== r) return;
    if (frame) {
      var item = {
        channel: frame.channel, previous: previous, channelname: m.name, protocol: m.protocol,
        id: frame.id, clients: frame.clients
      };
      r.rejoined.push(item);
      this._dispatch('rejoined', item);
    } else {
      if (this._members[key(m.name, m.protocol)] === m) delete this._members[key(m.name, m.protocol)];
      var lost = {
        channel: previous, channelname: m.name, protocol: m.protocol,
        errorcode: err.code, error: err.message
      };
      m.lost = true;
      r.lost.push(lost);
      this._dispatch('lost', lost);
    }
    r.left--;
    if (r.left === 0 && this._state === 'restoring') {
      this._restore = null;
      this._state = 'ready';
      this._dispatch('restored', { rejoined: r.rejoined, lost: r.lost });
      this._flush();
    }
  };

  P._onClose = function (code, reason) {
    var self = this;
    this._ws = null;
    this._restore = null;
    this._channels = {};
    this._clientId = false;

    // Requests the relay never answered.
    var pending = this._pending;
    this._pending = [];
    var requeue = [];
    pending.forEach(function (e) {
      clearTimeout(e.timer);
      if (e.done) return;
      if (e.kind === 'join' && !e.rejoin) {
        requeue.push(e); // JOIN again on the next connection
      } else if (e.kind === 'leave') {
        // A disconnect leaves every channel: the LEAVE has happened.
        self._forget(Number(e.msg.channel));
        e.done = true;
        e.resolve();
      } else if (!e.rejoin) {
        e.done = true;
        e.reject(RelayError('disconnected', 'the connection closed before the relay answered'));
      }
    });
    this._queue = requeue.concat(this._queue);

    var closed = this._state === 'closed';
    var delay = -1;
    if (!closed && this._opts.reconnect) delay = this._nextDelay(code);
    this._dispatch('disconnect', { code: code, reason: reason, reconnect: delay >= 0, delay: delay });
    if (closed) return;
    if (delay < 0) {
      this._state = 'closed';
      this._failQueue('closed', 'the client stopped reconnecting');
      return;
    }
    this._state = 'waiting';
    this._log('closed with code', code, '- reconnecting in', delay, 'ms');
    this._timer = setTimeout(function () {
      self._timer = null;
      if (self._state === 'waiting') self._open();
    }, delay);
  };

  // _nextDelay is the wait before the next connection attempt: prompt after
  // a server restart (close code 1012), otherwise exponential backoff with
  // jitter ("equal jitter": half fixed, half random).
  P._nextDelay = function (code) {
    var o = this._opts;
    var n = this._attempt++;
    if (code === CLOSE_SERVICE_RESTART && n === 0) return Math.floor(Math.random() * o.restartDelay);
    var d = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, n));
    return Math.floor(d / 2 + Math.random() * d / 2);
  };

  P._forget = function (channel) {
    for (var k in this._members) {
      if (this._members[k].channel === channel) delete this._members[k];
    }
  };

  // close stops the client for good: no reconnect; every queued or
  // unanswered request is rejected with code "closed".
  P.close = function (code, reason) {
    if (this._state === 'closed') return;
    var ws = this._ws;
    this._state = 'closed';
    clearTimeout(this._timer);
    this._timer = null;
    if (typeof window !== 'undefined' && window.removeEventListener) window.removeEventListener('online', this._onOnline);
    this._failQueue('closed', 'the client was closed');
    var pending = this._pending;
    this._pending = [];
    pending.forEach(function (e) {
      clearTimeout(e.timer);
      if (!e.done) { e.done = true; e.reject(RelayError('closed', 'the client was closed')); }
    });
    this._members = {};
    if (ws) {
      this._ws = null;
      this._channels = {};
      this._clientId = false;
      try { ws.close(code || 1000, reason || ''); } catch (err) { ws.close(); }
      this._dispatch('disconnect', { code: code || 1000, reason: reason || '', reconnect: false, delay: -1 });
    }
  };

  P._failQueue = function (code, text) {
    var q = this._queue;
    this._queue = [];
    q.forEach(function (e) { e.reject(RelayError(code, text)); });
  };

  // ---- sending ------------------------------------------------------------

  // _request sends entry e now when the connection is ready, or queues it.
  P._request = function (e) {
    if (this._state === 'closed') {
      e.reject(RelayError('closed', 'the client was closed'));
      return;
    }
    if (this._state === 'ready') {
      this._transmit(e);
      return;
    }
    if (this._queue.length >= this._opts.maxQueue) {
      var text = 'the send queue is full (' + this._opts.maxQueue + ' requests) while disconnected';
      var frame = errorFrame('queue_full', text);
      this._dispatch('error', frame);
      e.reject(RelayError('queue_full', text, frame));
      return;
    }
    // Remember which membership a channel number meant, so the request
    // follows the channel to its new number after a rejoin.
    if (e.kind !== 'join' && e.kind !== 'grant') {
      e.member = this._memberOf(Number(e.msg.channel));
    }
    this._queue.push(e);
  };

  P._memberOf = function (channel) {
    for (var k in this._members) {
      if (this._members[k].channel === channel) return this._members[k];
    }
    return null;
  };

  P._flush = function () {
    var q = this._queue;
    this._queue = [];
    for (var i = 0; i < q.length; i++) {
      var e = q[i];
      if (e.kind === 'join' && this._alreadyJoined(e)) continue;
      if (e.member) {
        if (e.member.lost) {
          e.reject(RelayError('channel_lost', 'the channel was lost while disconnected'));
          continue;
        }
        e.msg.channel = e.member.channel;
      }
      this._transmit(e);
    }
  };

  // _alreadyJoined answers a queued JOIN that the automatic rejoin has
  // already carried out with the same token (pages written for the original
  // SDK join again on 'connect'); sending it again would spend the token.
  P._alreadyJoined = function (e) {
    var m = this._members[key(e.msg.channel, e.msg.protocol)];
    if (!m || m.lost || !this._channels[m.channel] || m.token !== e.msg.token) return false;
    e.resolve(joinResult(this._channels[m.channel]));
    return true;
  };

  P._transmit = function (e) {
    var self = this;
    var text = JSON.stringify(e.msg);
    this._log('sending', text);
    this._ws.send(text);
    e.done = false;
    this._pending.push(e);
    if (e.silent) {
      // DRC acknowledges nothing on a successful direct send: it is done
      // when written; a later error frame still reaches the 'error' event.
      e.done = true;
      e.resolve();
      this._trimSilent();
      return;
    }
    if (this._opts.requestTimeout > 0) {
      e.timer = setTimeout(function () {
        if (e.done) return;
        self._remove(e);
        e.done = true;
        e.reject(RelayError('timeout', 'no answer from the relay within ' + self._opts.requestTimeout + ' ms'));
      }, this._opts.requestTimeout);
    }
  };

  P._trimSilent = function () {
    var silent = 0;
    for (var i = this._pending.length - 1; i >= 0; i--) {
      if (this._pending[i].silent && ++silent > MAX_SILENT) this._pending.splice(i, 1);
    }
  };

  P._remove = function (e) {
    var i = this._pending.indexOf(e);
    if (i >= 0) this._pending.splice(i, 1);
  };

  // _settle finds the first outstanding request that match(e) accepts,
  // drops the silent ones sent before it (the relay answers in order, so
  // they succeeded) and returns it, or null.
  P._settle = function (match) {
    for (var i = 0; i < this._pending.length; i++) {
      var e = this._pending[i];
      if (match(e)) {
        var before = this._pending.slice(0, i).filter(function (x) { return !x.silent; });
        this._pending = before.concat(this._pending.slice(i + 1));
        clearTimeout(e.timer);
        return e;
      }
    }
    return null;
  };

  P._answer = function (match, value) {
    var e = this._settle(match);
    if (!e) return;
    if (!e.done) { e.done = true; e.resolve(value); }
  };

  // ---- receiving ----------------------------------------------------------

  P._onFrame = function (data) {
    if (typeof data !== 'string') {
      try { data = new TextDecoder().decode(data); } catch (err) { return; }
    }
    this._log('received', data);
    var msg;
    try { msg = JSON.parse(data); } catch (err) { this._log('not JSON, ignored'); return; }
    if (!msg || typeof msg !== 'object') return;

    var ch = msg.channel;
    var channels = this._channels;

    if (!msg.success || !msg.cmd) {
      this._onError(msg);
      this._dispatch('error', msg);
    } else if (msg.cmd === 'JOINED') {
      if (msg.channelname && msg.protocol && msg.clients) {
        msg.clients = normalizeClients(msg.clients);
        channels[ch] = msg;
        this._clientId = msg.id;
        this._joined(msg);
      } else if (channels[ch]) {
        channels[ch].clients[msg.id] = msg.info;
      }
      this._dispatch('joined', msg);
    } else if (msg.cmd === 'LEFT' && channels[ch]) {
      this._dispatch('left', msg);
      if (msg.id === this._clientId) {
        delete channels[ch];
        this._forget(ch);
        this._answer(function (e) { return e.kind === 'leave' && Number(e.msg.channel) === ch; });
      } else {
        delete channels[ch].clients[msg.id];
      }
    } else if (channels[ch]) {
      if (msg.cmd === 'SET_EXTRA' && msg.from === 0) {
        var info = channels[ch].clients[msg.id];
        if (info) info.extra = msg.extra;
        this._answer(function (e) {
          return e.kind === 'setextra' && Number(e.msg.channel) === ch && Number(e.msg.id) === msg.id;
        }, msg);
      } else if (msg.from === this._clientId) {
        this._answer(function (e) {
          return e.kind === 'message' && e.echo && Number(e.msg.channel) === ch && e.msg.cmd === msg.cmd;
        }, msg);
      }
      this._dispatch('message', msg);
    } else {
      if (msg.cmd === 'GRANTED') {
        this._answer(function (e) {
          return e.kind === 'grant' && e.msg.channel === msg.channelname && e.msg.protocol === msg.protocol;
        }, { token: msg.token, channelname: msg.channelname, protocol: msg.protocol });
      }
      this._log('unhandled message', data);
      this._dispatch('unhandled', msg);
    }
  };

  P._joined = function (msg) {
    var e = this._settle(function (x) {
      return x.kind === 'join' && String(x.msg.channel) === msg.channelname && String(x.msg.protocol) === msg.protocol;
    });
    var k = key(msg.channelname, msg.protocol);
    var m = this._members[k];
    if (!m) {
      m = { name: msg.channelname, protocol: msg.protocol, token: undefined, ipauth: undefined, getToken: null };
      this._members[k] = m;
    }
    m.channel = msg.channel;
    m.lost = false;
    if (e && !e.rejoin) {
      m.token = e.msg.token;
      m.ipauth = e.msg.ipauth;
      if (e.getToken) m.getToken = e.getToken;
    }
    if (e && !e.done) {
      e.done = true;
      e.resolve(e.rejoin ? msg : joinResult(msg));
    }
  };

  function joinResult(msg) {
    return {
      channel: msg.channel,
      channelname: msg.channelname,
      protocol: msg.protocol,
      id: msg.id,
      info: msg.info,
      clients: msg.clients
    };
  }

  P._onError = function (msg) {
    var ch = typeof msg.channel === 'number' ? msg.channel : Number(msg.channel) || 0;
    var code = msg.errorcode;
    var e = this._settle(function (x) {
      var xc = typeof x.msg.channel === 'number' ? x.msg.channel : Number(x.msg.channel);
      switch (x.kind) {
        case 'join':
        case 'grant':
          return ch === 0 && !NOT_FOR[x.kind][code];
        case 'leave':
        case 'setextra':
          return (ch === 0 || ch === xc) && !NOT_FOR[x.kind][code];
        default: // message
          return ch === xc || (ch === 0 && (code === 'missing_channel' || code === 'invalid_channel'));
      }
    });
    if (!e || e.done) return;
    e.done = true;
    e.reject(RelayError(code || 'unknown', msg.error || 'the relay refused the request', msg));
  };

  // ---- promise API --------------------------------------------------------

  P._promise = function (entry) {
    var self = this;
    return new Promise(function (resolve, reject) {
      entry.resolve = resolve;
      entry.reject = reject;
      self._request(entry);
    });
  };

  // join enters channel (name, protocol); it resolves with the channel
  // number and its members, or rejects with the relay's errorcode.
  P.join = function (name, protocol, options) {
    var self = this;
    options = options || {};
    var token = options.token;
    var getToken = typeof options.getToken === 'function' ? options.getToken : null;
    var start = token || !getToken ? Promise.resolve(token) : Promise.resolve().then(function () { return getToken(name, protocol); });
    return start.then(function (tok) {
      var msg = { cmd: 'JOIN', channel: name, protocol: protocol };
      if (tok) msg.token = tok;
      if (options.ipauth === false) msg.ipauth = false;
      return self._promise({ kind: 'join', msg: msg, getToken: getToken });
    });
  };

  // leave exits a channel; resolves once the relay confirms it.
  P.leave = function (channel) {
    return this._promise({ kind: 'leave', msg: { cmd: 'LEAVE', channel: channelNumber(channel) } });
  };

  // send delivers {cmd, ...data} to member `to` of channel. The relay does
  // not acknowledge a direct send: it resolves once written to the socket
  // (a receive-only member's send is rejected with access_denied).
  P.send = function (channel, cmd, to, data) {
    var msg = Object.assign({}, data || {}, { channel: channelNumber(channel), cmd: cmd, to: to });
    return this._promise(this._messageEntry(msg));
  };

  // broadcast delivers {cmd, ...data} to every member the sender may reach;
  // it resolves with the sender's own copy when the relay echoes one.
  P.broadcast = function (channel, cmd, data) {
    var n = channelNumber(channel);
    var msg = Object.assign({}, data || {}, { channel: n, cmd: cmd, to: -1 });
    return this._promise(this._messageEntry(msg));
  };

  // _messageEntry describes a message request by what the relay will
  // answer, which depends on the sender's mode in the channel: a broadcast
  // comes back to an authority or a mode 2 sender; a mode 0 sender is
  // refused (access_denied); otherwise a successful send is silent.
  P._messageEntry = function (msg) {
    var c = this._channels[msg.channel];
    var me = c && (c.clients[this._clientId] || c.info);
    var broadcast = Number(msg.to) < 0;
    var echo, refused = false;
    if (me) {
      echo = broadcast && (me.auth || me.mode === 2);
      refused = !me.auth && me.mode === 0;
    } else {
      // Unknown until the rejoin: assume the common case, a mode 2 member.
      echo = broadcast && !!this._memberOf(msg.channel);
    }
    return { kind: 'message', msg: msg, silent: !echo && !refused, echo: echo };
  };

  // grant mints a grant token (authorities only) and resolves with
  // {token, channelname, protocol}.
  P.grant = function (name, protocol, options) {
    options = options || {};
    var msg = {
      cmd: 'GRANT', channel: name, protocol: protocol,
      clientmode: options.clientmode === undefined ? 0 : options.clientmode,
      extra: options.extra || {}
    };
    if (options.token) msg.token = options.token;
    if (options.makeauth === true) msg.makeauth = true;
    return this._promise({ kind: 'grant', msg: msg });
  };

  // setExtra replaces a member's extra (authorities only); resolves with
  // the SET_EXTRA notification.
  P.setExtra = function (channel, id, extra) {
    return this._promise({ kind: 'setextra', msg: { channel: channelNumber(channel), cmd: 'SET_EXTRA', id: id, extra: extra } });
  };

  function channelNumber(channel) {
    if (channel && typeof channel === 'object' && 'channel' in channel) return channel.channel;
    return channel;
  }

  // ---- DRC browser API (drc_client.js names, argument order, events) -----

  P._fire = function (entry) {
    entry.resolve = noop;
    entry.reject = noop;
    this._request(entry);
  };

  P.CreateToken = function (authtoken, channelname, protocol, clientmode, extra) {
    var msg = { cmd: 'GRANT', channel: channelname, protocol: protocol, clientmode: clientmode, extra: extra || {} };
    if (authtoken) msg.token = authtoken;
    this._fire({ kind: 'grant', msg: msg });
  };

  P.JoinChannel = function (channelname, protocol, authtoken, allowipauth) {
    var msg = { cmd: 'JOIN', channel: channelname, protocol: protocol };
    if (authtoken) msg.token = authtoken;
    if (allowipauth === false) msg.ipauth = false;
    this._fire({ kind: 'join', msg: msg });
  };

  P.GetChannels = function () {
    return this._channels;
  };

  P.GetChannel = function (channel) {
    return this._channels[channel];
  };

  P.GetClientID = function () {
    return this._clientId;
  };

  P.SetExtra = function (channel, id, extra) {
    this._fire({ kind: 'setextra', msg: { channel: channel, cmd: 'SET_EXTRA', id: id, extra: extra } });
  };

  P.SendCommand = function (channel, cmd, to, options) {
    var msg = { channel: channel, cmd: cmd, to: to };
    if (options) msg = Object.assign({}, options, msg);
    this._fire(this._messageEntry(msg));
  };

  P.GetRandomAuthClientID = function (channel) {
    var ids = this._authIds(channel);
    if (!ids.length) return false;
    return ids[Math.floor(Math.random() * ids.length)];
  };

  P.SendCommandToAuthClients = function (channel, cmd, options) {
    var self = this;
    this._authIds(channel).forEach(function (id) { self.SendCommand(channel, cmd, id, options); });
  };

  // _authIds lists the authority members of channel as strings, as the
  // original SDK does (it iterates the clients map).
  P._authIds = function (channel) {
    var c = this._channels[channel];
    if (!c) return [];
    var ids = [];
    for (var id in c.clients) {
      if (c.clients[id] && c.clients[id].auth) ids.push(id);
    }
    return ids;
  };

  P.LeaveChannel = function (channel) {
    this._fire({ kind: 'leave', msg: { cmd: 'LEAVE', channel: channel } });
  };

  // DRCClient is the original SDK's constructor name: new DRCClient(url).
  function DRCClient(url, options) {
    if (!(this instanceof DRCClient)) {
      console.error('[DRCClient] Error:  Did you forget to use the "new" keyword?');
      return undefined;
    }
    return new RelayClient(url, options);
  }
  DRCClient.prototype = RelayClient.prototype;

  RelayClient.VERSION = VERSION;
  RelayClient.CLOSE_SERVICE_RESTART = CLOSE_SERVICE_RESTART;

  var root = typeof globalThis !== 'undefined' ? globalThis : (typeof window !== 'undefined' ? window : this);
  if (root) {
    root.RelayClient = RelayClient;
    root.DRCClient = DRCClient;
    root.RelayError = RelayError;
  }

  return { RelayClient: RelayClient, DRCClient: DRCClient, RelayError: RelayError, VERSION: VERSION };
})();
