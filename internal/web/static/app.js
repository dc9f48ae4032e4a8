// The chat's web client: the page and the session. It speaks the frames of
// PROTOCOL.md (codec.js) over a WebSocket whose binary messages carry the
// bytes of the TCP stream (see docs/WEB.md). Everything a peer sends is put
// on the page as text (textContent), never as HTML.
'use strict';

(() => {
  const {
    MAX_RECIPIENTS, enc, dec, nameProblem, textProblem, safeFilename, frame, splitFields, Decoder,
    StreamError, COUNTED, SendLog, MAX_LOST_LABELS, messageLabel, parseCount, parseResumed,
  } = globalThis.chatCodec;
  const UPLOAD_SLICE = 1 << 20; // bytes of a file read and sent at a time
  const UPLOAD_HIGH_WATER = 4 << 20; // wait while this much is buffered by the socket
  const LIST_EVERY_MS = 5000;
  const FOLD_BYTES = 8 << 20; // received bytes folded into a Blob at a time
  // The features the page asks for. A resumed connection asks for the
  // same ones, and must be granted them: the page's decoding rests on them.
  // taken: the server counts the page's messages and list requests, and a
  // resume sends again those a lost connection did not deliver.
  const FEATURES = ['chunked-file', 'presence', 'not-online', 'online', 'resume', 'heartbeat', 'taken'];
  // Acknowledging and reconnecting follow the terminal client's rules
  // (internal/client/reconnect.go; docs/SESSIONS.md): an acknowledgement
  // once ACK_EVERY counted frames wait, or ACK_DELAY_MS after the first;
  // attempts BACKOFF_FIRST_MS apart, doubling to BACKOFF_MAX_MS, jittered
  // by up to half; one attempt waits ATTEMPT_WAIT_MS at most.
  const ACK_EVERY = 64;
  const ACK_DELAY_MS = 200;
  const BACKOFF_FIRST_MS = 50;
  const BACKOFF_MAX_MS = 1000;
  const ATTEMPT_WAIT_MS = 2000;
  // The heartbeat (docs/PROTOCOL.md, "heartbeat"; docs/WEB.md): a page
  // granted it pings after a third of the server's heartbeat timeout
  // without a byte from the server, and takes the connection as lost,
  // and resumes, after all of it. The server's timeout comes with
  // config.json; until it does, the server's default.
  let heartbeatTimeoutMs = 15000;
  // The page URLs of a cluster's other nodes (config.json, --http-peers):
  // a lost connection is resumed on the node that served the page first,
  // then on these in turn, with the cursor feature so that each node's
  // position is known (docs/WEB.md, "Another node"). A page served over
  // https is never sent to an http node: its token would cross the
  // network in clear.
  let peers = [];

  // byBytes orders names as the server lists them: by their UTF-8 bytes.
  function byBytes(a, b) {
    const x = enc.encode(a), y = enc.encode(b);
    for (let i = 0; i < x.length && i < y.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  }

  // ---- Page elements ---------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const el = {
    who: $('who'), status: $('status'), leave: $('leave'),
    banner: $('banner'), bannerText: $('banner-text'), rejoin: $('rejoin'),
    joinView: $('join-view'), joinForm: $('join-form'), name: $('name'), join: $('join'), joinError: $('join-error'),
    chatView: $('chat-view'), users: $('users'), userCount: $('user-count'),
    all: $('all'), none: $('none'), refresh: $('refresh'),
    log: $('log'), sendForm: $('send-form'), to: $('to'), text: $('text'), send: $('send'),
    pickFile: $('pick-file'), file: $('file'), sendError: $('send-error'), drop: $('drop'),
  };

  function setStatus(text, cls) {
    el.status.textContent = text;
    el.status.className = cls || '';
  }

  function showJoin(error) {
    el.chatView.hidden = true;
    el.joinView.hidden = false;
    el.leave.hidden = true;
    el.who.textContent = '';
    el.join.disabled = false;
    el.name.disabled = false;
    el.joinError.textContent = error || '';
    el.name.focus();
  }

  function showChat() {
    el.joinView.hidden = true;
    el.banner.hidden = true;
    el.chatView.hidden = false;
    el.leave.hidden = false;
    el.who.textContent = session.name;
    setStatus('Online', 'online');
    el.text.focus();
  }

  // showBanner shows text above the page; bad marks it as an error (a
  // lost connection) rather than news (the user left).
  function showBanner(text, bad) {
    el.bannerText.textContent = text;
    el.banner.classList.toggle('info', !bad);
    el.banner.hidden = false;
    el.rejoin.focus();
  }

  // setOnline turns on or off every control that acts on the session, so
  // that none stays usable once it is over (issue 23): the list of who
  // was online is cleared, since it is no longer known.
  function setOnline(on) {
    for (const b of [el.text, el.send, el.pickFile, el.all, el.none, el.refresh]) b.disabled = !on;
    el.leave.hidden = !on;
    if (!on) {
      el.users.replaceChildren();
      el.userCount.textContent = '';
      el.to.textContent = 'nobody: you are not in the chat';
    }
  }

  function timeNow() {
    return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function scrollLog() {
    el.log.scrollTop = el.log.scrollHeight;
  }

  // addEntry adds a message to the log: from (a name or ''), meta (extra
  // words after it), and a body node or text.
  function addEntry(cls, from, meta, body) {
    const li = document.createElement('li');
    li.className = cls;
    const m = document.createElement('span');
    m.className = 'meta';
    if (from) {
      const f = document.createElement('span');
      f.className = 'from';
      f.textContent = from;
      m.append(f, ' ');
    }
    m.append(`${meta}${meta ? ' · ' : ''}${timeNow()}`);
    li.append(m);
    if (typeof body === 'string') {
      const t = document.createElement('span');
      t.className = 'text';
      t.textContent = body;
      li.append(t);
    } else if (body) {
      li.append(body);
    }
    const atBottom = el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 40;
    el.log.append(li);
    if (atBottom || cls.includes('mine')) scrollLog();
    return li;
  }

  function note(text, bad) {
    return addEntry(bad ? 'note bad' : 'note', '', '', text);
  }

  function formatSize(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let u = 0;
    while (n >= 1024 && u < units.length - 1) {
      n /= 1024;
      u++;
    }
    return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
  }

  // ---- Resume ----------------------------------------------------------
  // ResumeState is all the page knows of its session for the resume
  // extension (docs/PROTOCOL.md, "resume"): the token from the session
  // frame, the window, and the count of counted frames received and
  // acknowledged. What a resume or an acknowledgement carries is built
  // here alone, so that a position of another form (a cursor) changes
  // this class only.
  class ResumeState {
    constructor() {
      this.token = ''; // '' until a session frame came: no resume
      this.windowMs = 0;
      this.count = 0; // counted frames received whole
      this.acked = 0; // the count the server was last told
      this.cursor = null; // the last cursor frame's payload read whole (cursor feature)
      this.cursorJ = 0; // the counted frames read after it
    }
    get have() {
      return this.token !== '';
    }
    // session takes a session frame's payload, `<token> <window-ms>`; it
    // returns false for a malformed or repeated one, which is ignored.
    session(p) {
      const m = /^([0-9a-f]{32}) (0|[1-9][0-9]{0,15})$/.exec(dec.decode(p));
      if (!m || this.have) return false;
      this.token = m[1];
      this.windowMs = Number(m[2]);
      return true;
    }
    // received counts a frame of type t read whole, and returns true if
    // it is a counted one.
    received(t) {
      if (!this.have || !COUNTED.has(t)) return false;
      this.count++;
      this.cursorJ++;
      return true;
    }
    // cursorFrame takes a cursor frame's payload: a resume on another
    // node names it, and the counted frames read after it.
    cursorFrame(p) {
      if (!this.have) return;
      this.cursor = p.slice();
      this.cursorJ = 0;
    }
    unacked() {
      return this.count - this.acked;
    }
    // ackFrame returns the received frame that acknowledges the count.
    ackFrame() {
      this.acked = this.count;
      return frame('received', String(this.count));
    }
    // resumeFrame returns the resume frame for name; the server then
    // knows the count.
    resumeFrame(name) {
      this.acked = this.count;
      if (this.cursor) return frame('resume', `${name} ${this.token} ${this.count} ${this.cursorJ} `, this.cursor);
      return frame('resume', `${name} ${this.token} ${this.count}`);
    }
  }

  // sameFeatures reports whether an ext_hello answer (payload p) grants
  // what the first connection was granted.
  function sameFeatures(p, first) {
    const got = dec.decode(p).split(' ').filter((f) => f !== '').sort();
    const want = [...first].sort();
    return got.length === want.length && got.every((f, i) => f === want[i]);
  }

  // ---- The session -----------------------------------------------------
  let maxFileSize = 1 << 30; // the server's --max-file-size, from config.json
  let session = null;

  class Session {
    constructor(name, extensions) {
      this.name = name;
      this.extensions = extensions;
      this.joined = false;
      this.over = false;
      this.helloAnswered = false;
      this.granted = []; // the features the first connection was granted
      // The server tells of joins and leaves (presence) while few users
      // are online; otherwise, or with a server that does not, the list
      // is asked for now and then.
      this.presence = false;
      this.users = [];
      this.selected = new Set();
      this.outbox = Promise.resolve(); // sends run one after another
      this.listPending = false;
      this.files = new Map(); // chunked transfers being received, by id
      this.plainFile = null; // the forward_file being received
      this.uploading = 0;
      // Resume (docs/WEB.md, "A lost connection"): the state to resume
      // with, and the connection's.
      this.res = new ResumeState();
      // The messages and list requests sent that the server has not said
      // it took (SendLog), once it granted taken; else null.
      this.sent = null;
      this.reconnecting = false; // lost: attempts run, sends wait
      this.deadline = 0; // when the session's window passes, once lost
      this.backoff = BACKOFF_FIRST_MS;
      this.attemptTimer = null;
      this.retryTimer = null;
      this.ackTimer = null;
      this.midFrame = false; // a send_file is being sent: no other frame may go now
      this.ackWanted = false; // an acknowledgement waits for the send_file's end
      this.changed = null; // resolves the waits of ready() at the next change
      this.heardAt = 0; // performance.now() when the server was last heard from
      this.hbTimer = null;
      // The nodes to resume on (the one in use first) and the features
      // every connection asks for: cursor too when there are others.
      this.base = location.href;
      this.order = [];
      this.tries = 0;
      this.features = peers.length > 0 ? [...FEATURES, 'cursor'] : FEATURES;
      this.decoder = this.newDecoder();
      this.connect();
    }

    newDecoder() {
      return new Decoder({
        frame: (t, p) => this.onFrame(t, p),
        fileBegin: (s, f, n) => { this.plainFile = this.beginDownload(s, f, n); },
        fileData: (d) => this.plainFile.add(d),
        fileEnd: () => { this.plainFile.finish(); this.plainFile = null; },
      });
    }

    // connect opens a WebSocket; its events are heard while it is the
    // session's.
    connect() {
      const url = new URL('ws', this.base);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => { if (ws === this.ws) this.onOpen(); };
      ws.onmessage = (e) => { if (ws === this.ws) this.onMessage(e); };
      ws.onclose = (e) => { if (ws === this.ws) this.onClose(e); };
      ws.onerror = () => {};
      this.ws = ws;
      this.signal();
    }

    // signal wakes whoever waits in ready(): the connection or the
    // session's state changed.
    signal() {
      const c = this.changed;
      this.changed = null;
      if (c) c.resolve();
    }

    waitChange() {
      if (!this.changed) {
        let resolve;
        const promise = new Promise((r) => { resolve = r; });
        this.changed = { promise, resolve };
      }
      return this.changed.promise;
    }

    // ready waits until frames may be sent (connected, not resuming); it
    // returns false if the session ended first.
    async ready() {
      while (!this.over && (this.reconnecting || this.ws.readyState !== WebSocket.OPEN)) await this.waitChange();
      return !this.over;
    }

    send(bytes) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
    }

    // sendCounted sends a message or a list request (label names it to a
    // person; '' for a list request, which nobody typed), numbering and
    // keeping it first when the server counts them: one the connection
    // takes while it is already dead, not yet seen to be, is sent again
    // after the resume.
    sendCounted(bytes, label) {
      if (this.sent) this.sent.add(bytes, label);
      this.send(bytes);
    }

    // queue runs op after every send queued before it, once frames may
    // be sent; not at all if the session ends first. The promise it
    // returns tells whether op ran.
    queue(op) {
      const run = this.outbox.then(async () => {
        if (!(await this.ready())) return false;
        await op();
        return true;
      });
      this.outbox = run.catch((err) => {
        note(`Could not send: ${err.message}`, true);
      });
      return run.catch(() => true);
    }

    onOpen() {
      this.signal();
      if (this.reconnecting) {
        // ext_hello and resume go together; sends wait for resumed.
        this.ws.send(frame('ext_hello', this.features.join(' ')));
        this.ws.send(this.res.resumeFrame(this.name));
        return;
      }
      if (this.extensions) {
        // The server answers a join that stands with the names online
        // (online): the page asks for no list, which would print a
        // request_users_list line on the server's stdout for a command
        // nobody typed.
        this.send(frame('ext_hello', this.features.join(' ')));
        this.send(frame('join', this.name));
        return;
      }
      this.send(frame('join', this.name));
      // The join is silent when it succeeds: the answer to this request
      // is what shows it did.
      this.requestList();
    }

    // joinStood shows the chat once the join is known to have stood.
    joinStood() {
      if (this.joined) return;
      this.joined = true;
      showChat();
    }

    requestList() {
      if (this.listPending || this.over) return;
      this.listPending = true;
      this.queue(() => this.sendCounted(frame('request_users_list'), ''));
    }

    onMessage(e) {
      if (this.over) return;
      this.heardAt = performance.now();
      try {
        this.decoder.feed(new Uint8Array(e.data));
      } catch (err) {
        if (!(err instanceof StreamError)) console.error(err);
        this.end(`Disconnected: the server sent something this page cannot read (${err.message}).`);
      }
    }

    onFrame(type, p) {
      if (this.over) return;
      if (this.reconnecting) {
        this.onResumeFrame(type, p);
        return;
      }
      if (this.res.received(type)) this.counted();
      switch (type) {
        case 'ext_hello':
          this.helloAnswered = true;
          this.granted = dec.decode(p).split(' ').filter((f) => f !== '');
          this.presence = this.granted.includes('presence');
          // From here the page numbers its messages and list requests, as
          // the server counts them (from the join on, which went before).
          if (this.granted.includes('resume') && this.granted.includes('taken')) this.sent = new SendLog();
          this.startHeartbeat();
          // A server without online: the answer to a list shows the
          // join stood, as with no extensions.
          if (!this.granted.includes('online')) this.requestList();
          break;
        case 'session':
          // Resume is on: from here counted frames are counted.
          if (!this.granted.includes('resume') || !this.res.session(p)) console.warn('ignoring a session frame: resume not granted, repeated or malformed');
          break;
        case 'online': {
          const f = dec.decode(p).split(' ');
          const names = f.slice(1).filter((n) => n !== '');
          this.joinStood();
          if (names.length === Number(f[0])) {
            this.users = names;
            renderUsers();
          } else {
            this.requestList(); // too many to list: the server sent the number alone
          }
          break;
        }
        case 'presence': {
          const [event, arg] = dec.decode(p).split(' ');
          if (event === 'joined' && arg && !this.users.includes(arg)) {
            this.users = [...this.users, arg].sort(byBytes);
            renderUsers();
          } else if (event === 'left' && arg) {
            this.users = this.users.filter((n) => n !== arg);
            this.selected.delete(arg);
            renderUsers();
          } else if (event === 'paused') {
            this.presence = false; // too many online: back to asking
          } else if (event === 'resumed') {
            this.presence = true;
            this.requestList();
          }
          break;
        }
        case 'not_online': {
          const names = dec.decode(p).split(' ').slice(1).filter((n) => n !== '');
          if (names.length > 0) note(`Not online: ${names.join(', ')}. Nothing was delivered to ${names.length === 1 ? 'them' : 'those'}.`, true);
          break;
        }
        case 'response_users_list': {
          this.listPending = false;
          const f = dec.decode(p).split(' ');
          this.users = f.slice(1).filter((n) => n !== '');
          this.joinStood();
          renderUsers();
          break;
        }
        case 'forward_message': {
          const f = splitFields(p, 2);
          if (!f || f[0] !== '1') return;
          this.noteSender(f[1]);
          addEntry('msg', f[1], '', dec.decode(f[2]));
          break;
        }
        case 'file_begin': {
          const f = dec.decode(p).split(' ');
          if (f.length !== 4) return;
          const size = Number(f[3]);
          this.files.set(f[0], this.beginDownload(f[1], f[2], size));
          break;
        }
        case 'file_chunk': {
          const f = splitFields(p, 1);
          const d = f && this.files.get(f[0]);
          if (d) d.add(f[1]);
          break;
        }
        case 'file_end':
        case 'file_abort': {
          const id = dec.decode(p);
          const d = this.files.get(id);
          if (!d) return;
          this.files.delete(id);
          if (type === 'file_end') d.finish();
          else d.abort('the sender went away before the end');
          break;
        }
        case 'cursor':
          if (this.granted.includes('cursor')) this.res.cursorFrame(p);
          break;
        case 'received': {
          // The server's count of the page's frames it has taken.
          const n = parseCount(dec.decode(p));
          const why = !this.sent ? 'taken not granted' : n < 0 ? 'malformed' : this.sent.took(n);
          if (why) console.warn(`ignoring received: ${why}`);
          break;
        }
        case 'ping':
          // Answered from here, not from a timer: a hidden tab runs its
          // timers once a minute, and the server pings a page that has
          // been silent for half its timeout.
          if (this.granted.includes('heartbeat') && !this.midFrame) this.send(frame('pong'));
          break;
        case 'err_server_full':
          this.refused('The server is full: no more users can join right now. Try again later.');
          break;
        case 'err_username_unavailable':
          this.refused(`The name “${this.name}” is taken or not allowed. Pick another.`);
          break;
        case 'err_unknown_message':
          if (!this.joined && this.extensions && !this.helloAnswered) {
            // A server that knows only the contract: join again without
            // asking for extensions.
            this.over = true;
            this.ws.close();
            session = new Session(this.name, false);
            return;
          }
          this.end('Disconnected: the server received an unknown command.');
          break;
      }
    }

    // startHeartbeat (re)starts the heartbeat, if granted, on a
    // connection just opened or resumed: its silence starts now.
    startHeartbeat() {
      this.stopHeartbeat();
      if (!this.granted.includes('heartbeat')) return;
      this.heardAt = performance.now();
      this.hbTimer = setTimeout(() => this.beat(), heartbeatTimeoutMs / 3);
    }

    stopHeartbeat() {
      if (this.hbTimer !== null) clearTimeout(this.hbTimer);
      this.hbTimer = null;
    }

    // beat pings when nothing came for a third of the timeout, and takes
    // the connection as lost when nothing came for all of it: a network
    // that vanished without a word (no close, no reset) is seen in
    // seconds rather than when TCP gives up, minutes later.
    beat() {
      this.hbTimer = null;
      if (this.over || this.reconnecting) return;
      const every = heartbeatTimeoutMs / 3;
      const quiet = performance.now() - this.heardAt;
      if (quiet >= heartbeatTimeoutMs) {
        console.warn(`no answer from the server for ${Math.round(quiet)} ms: taking the connection as lost`);
        const ws = this.ws;
        ws.onclose = null;
        ws.close();
        this.startReconnect();
        return;
      }
      // Not inside a file being sent: its progress counts as heard.
      if (quiet >= every && !this.midFrame) this.send(frame('ping'));
      this.hbTimer = setTimeout(() => this.beat(), quiet >= every ? Math.min(every, heartbeatTimeoutMs - quiet) : every - quiet);
    }

    // counted acknowledges the counted frames received: at once when
    // ACK_EVERY wait, else ACK_DELAY_MS after the first.
    counted() {
      if (this.res.unacked() >= ACK_EVERY) this.ack();
      else if (this.ackTimer === null) this.ackTimer = setTimeout(() => { this.ackTimer = null; this.ack(); }, ACK_DELAY_MS);
    }

    ack() {
      this.stopAck();
      if (this.over || this.reconnecting || this.res.unacked() === 0) return;
      if (this.midFrame) {
        this.ackWanted = true; // it would land inside the file's frame
        return;
      }
      // A connection closing, not yet known lost: the resume will carry
      // the count.
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(this.res.ackFrame());
    }

    stopAck() {
      if (this.ackTimer !== null) clearTimeout(this.ackTimer);
      this.ackTimer = null;
      this.ackWanted = false;
    }

    noteSender(name) {
      if (!this.users.includes(name)) this.requestList();
    }

    refused(text) {
      this.over = true;
      this.ws.close();
      this.signal();
      if (this.joined) {
        this.end(`Disconnected: ${text}`);
      } else {
        setStatus('Not joined', 'offline');
        showJoin(text);
      }
    }

    onClose(e) {
      if (this.over) return;
      if (this.reconnecting) {
        this.attemptFailed();
        return;
      }
      if (!this.joined) {
        this.over = true;
        this.signal();
        setStatus('Not joined', 'offline');
        showJoin('Could not join: the server closed the connection. It may be down, or too many connections come from your address.');
        return;
      }
      // A connection cut (no close frame from the server: code 1006) is
      // lost, and resumed. One the server closed itself (1000 after its
      // last frame, 1001 as it shuts down) ended the session there.
      if (this.res.have && e.code !== 1000 && e.code !== 1001) {
        this.startReconnect();
        return;
      }
      this.end('Disconnected: connection to the server lost.');
    }

    // startReconnect begins resuming a lost connection: the conversation
    // stays, the status says "Reconnecting…", and sends wait.
    startReconnect() {
      this.reconnecting = true;
      this.stopHeartbeat();
      // The node in use first, then the others.
      this.order = [this.base, ...[location.href, ...peers].filter((u) => u !== this.base)];
      this.tries = 0;
      this.deadline = Date.now() + this.res.windowMs;
      this.backoff = BACKOFF_FIRST_MS;
      this.stopAck();
      // Files arriving are cut short; the server gave them up with the
      // connection (uploads see it themselves).
      this.dropDownloads('the connection was lost; ask for it again');
      setStatus('Reconnecting…', 'reconnecting');
      this.signal();
      this.attempt();
    }

    // attempt opens a connection and resumes on it, unless the window
    // has passed.
    attempt() {
      this.retryTimer = null;
      if (this.over) return;
      const left = this.deadline - Date.now();
      if (left <= 0) {
        this.end('Disconnected: connection to the server lost (no server took the session back in time).');
        return;
      }
      this.decoder = this.newDecoder(); // what a cut frame left is dropped
      this.base = this.order[this.tries++ % this.order.length];
      this.connect();
      const ws = this.ws;
      this.attemptTimer = setTimeout(() => {
        this.attemptTimer = null;
        if (ws !== this.ws || !this.reconnecting) return;
        ws.onclose = null;
        ws.close();
        this.attemptFailed();
      }, Math.min(ATTEMPT_WAIT_MS, left));
    }

    attemptFailed() {
      if (this.attemptTimer !== null) clearTimeout(this.attemptTimer);
      this.attemptTimer = null;
      const left = this.deadline - Date.now();
      if (left <= 0) {
        this.end('Disconnected: connection to the server lost (no server took the session back in time).');
        return;
      }
      const pause = this.backoff / 2 + Math.random() * (this.backoff / 2);
      this.backoff = Math.min(2 * this.backoff, BACKOFF_MAX_MS);
      this.retryTimer = setTimeout(() => this.attempt(), Math.min(pause, left));
    }

    // onResumeFrame takes the frames that answer a resume: ext_hello,
    // then resumed or resume_failed.
    onResumeFrame(type, p) {
      switch (type) {
        case 'ext_hello':
          if (!sameFeatures(p, this.granted)) this.end('Disconnected: connection to the server lost; the server now answering does not offer what the session had.');
          return;
        case 'resumed': {
          const r = parseResumed(p);
          if (!r) {
            this.end('Disconnected: the server sent something this page cannot read (a malformed resumed).');
            return;
          }
          if (r.has && !this.sent) {
            this.end('Disconnected: connection to the server lost; the server now answering does not offer what the session had.');
            return;
          }
          this.resumed(r);
          return;
        }
        case 'resume_failed':
          this.end('Disconnected: connection to the server lost, and the session could not be resumed (it ended, or the server restarted).');
          return;
        default:
          this.end(`Disconnected: connection to the server lost; the server answered the resume with ${type}.`);
      }
    }

    // resumed carries on after a resume that stood (r: what resumed
    // says): the frames the server kept follow; what the page sent and
    // the server did not take goes again, then the sends that waited.
    resumed(r) {
      if (this.attemptTimer !== null) clearTimeout(this.attemptTimer);
      this.attemptTimer = null;
      this.reconnecting = false;
      setStatus('Online', 'online');
      this.startHeartbeat();
      const missed = r.missed;
      if (missed > 0) {
        note(`The connection was lost and you missed ${missed} message${missed === 1 ? '' : 's'} (more than the server keeps for you).`, true);
        // Joins and leaves may be among them.
        this.requestList();
      }
      this.sendAgain(r);
      this.signal();
    }

    // sendAgain sends, on the connection just resumed and before anything
    // new (sends wait for signal), the frames the server did not take,
    // and says in the log what it sent again and what it could not, as
    // the terminal client says it on stderr (internal/client/sendlog.go).
    sendAgain(r) {
      if (!this.sent) return;
      const exact = r.has && r.exact;
      if (!r.has) console.warn('the server did not say how many of your messages it took: sending again those it did not confirm');
      const { again, lost, labels } = this.sent.resumeFrom(r.taken, exact);
      if (lost > 0) {
        // List requests (label '') are the page's own: not named.
        const named = labels.filter((l) => l !== '');
        let s = `${lost} message${lost === 1 ? '' : 's'} you sent may not have reached anyone (more than the page keeps to send again; send ${lost === 1 ? 'it' : 'them'} again if needed)`;
        if (named.length > 0) s += `${named.length < lost ? '; the last: ' : ': '}${named.join('; ')}`;
        note(s, true);
      }
      // ws.send does not fail on an open connection: if this one is lost
      // too, the frames are still kept, for the next resume.
      for (const f of again) this.ws.send(f.frame);
      const msgs = again.filter((f) => f.label !== '');
      if (msgs.length === 0) return; // only list requests: nothing to tell
      const k = msgs.length;
      const what = `${k} message${k === 1 ? '' : 's'} you sent`;
      if (exact) {
        note(`Sent again ${what} that had not reached the server.`);
        return;
      }
      // Named, so that the person knows which may come twice.
      const last = msgs.slice(-MAX_LOST_LABELS).map((f) => f.label);
      note(`Sent again ${what} that the server that failed may not have taken: some may arrive twice${k > MAX_LOST_LABELS ? '; the last: ' : ': '}${last.join('; ')}`, true);
    }

    dropDownloads(why) {
      for (const d of this.files.values()) d.abort(why);
      this.files.clear();
      if (this.plainFile) this.plainFile.abort(why);
      this.plainFile = null;
    }

    // end ends the session, keeping the page as it was under a banner.
    end(text) {
      const wasOver = this.over;
      this.over = true;
      this.reconnecting = false;
      this.stopAck();
      this.stopHeartbeat();
      for (const t of [this.attemptTimer, this.retryTimer]) if (t !== null) clearTimeout(t);
      this.attemptTimer = this.retryTimer = null;
      this.signal();
      if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
      this.dropDownloads('the connection ended');
      if (wasOver && !this.joined) return;
      setStatus('Offline', 'offline');
      setOnline(false);
      showBanner(text, true);
    }

    leave() {
      if (this.over) return;
      if (this.reconnecting) {
        // No connection to say it on: the server ends the session when
        // its window passes.
        this.end('');
        setStatus('Left', '');
        showBanner('You left the chat.', false);
        return;
      }
      this.queue(() => {
        this.send(frame('disconnect', this.name));
        this.over = true;
        this.signal();
        setStatus('Left', '');
        setOnline(false);
        showBanner('You left the chat.', false);
        // The server closes once it has sent what it had for us.
      });
    }

    // pageGone quits as the page goes away (closed, reloaded): it cannot
    // resume, and without a disconnect the server would keep the name
    // for the window. A disconnect cannot go inside a file being sent.
    pageGone() {
      if (this.over) return;
      if (!this.reconnecting && !this.midFrame && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame('disconnect', this.name));
      this.end('');
      setStatus('Left', '');
      showBanner('You left the chat: the page was closed.', false);
    }

    beginDownload(sender, filename, size) {
      this.noteSender(sender);
      return new Download(this.name, sender, filename, size);
    }

    // sendMessage shows the message and sends it. One typed while a file
    // is being sent goes after the file (one frame at a time on the
    // stream), and one typed while reconnecting after the resume: it
    // shows as waiting until then, and as sent after; as not sent if the
    // session ends first.
    sendMessage(names, text) {
      const li = addEntry('mine', 'you', `to ${names.join(', ')}`, text);
      let state = null;
      const mark = (s) => {
        if (!state) {
          state = document.createElement('span');
          state.className = 'state';
          li.querySelector('.meta').append(state);
        }
        state.textContent = ` · ${s}`;
      };
      if (this.uploading > 0) mark('waiting for the file to go first');
      else if (this.reconnecting) mark('waiting: reconnecting');
      if (state) li.classList.add('queued');
      this.queue(() => {
        this.sendCounted(frame('send_message', `${names.length} ${names.join(' ')} `, text), messageLabel(names, text));
        if (state) {
          li.classList.remove('queued');
          mark('sent');
        }
      }).then((ran) => {
        if (ran) return;
        li.classList.remove('queued');
        li.classList.add('bad');
        mark('not sent: the connection was lost');
      });
    }

    sendFile(names, file) {
      const filename = safeFilename(file.name);
      const up = new Upload(names, file, filename);
      this.uploading++;
      this.queue(() => this.upload(up, names, file, filename)).then((ran) => {
        if (!ran) up.abort('the connection was lost');
      }).finally(() => { this.uploading--; });
    }

    // upload sends one send_file frame, its content read from file in
    // slices as the socket takes them. The frame goes on one connection:
    // if it is lost meanwhile, the file is given up (the server dropped
    // what came of it), and later sends go on after the resume.
    async upload(up, names, file, filename) {
      const ws = this.ws;
      const lost = () => this.over || this.reconnecting || this.ws !== ws;
      const why = () => (this.over ? 'the connection ended' : 'the connection was lost while it was being sent; send it again');
      const head = enc.encode(`${names.length} ${names.join(' ')} ${filename} `);
      const size = file.size;
      this.midFrame = true;
      try {
        ws.send(enc.encode(`send_file ${head.length + size} `));
        ws.send(head);
        let sent = 0;
        let shrank = false;
        while (sent < size) {
          await this.drained(ws, UPLOAD_HIGH_WATER);
          if (lost()) return up.abort(why());
          const want = Math.min(UPLOAD_SLICE, size - sent);
          let buf;
          try {
            buf = new Uint8Array(await file.slice(sent, sent + want).arrayBuffer());
          } catch {
            buf = new Uint8Array(0);
          }
          if (buf.length < want) {
            // The frame's length is promised: complete it with zeros.
            shrank = true;
            const full = new Uint8Array(want);
            full.set(buf);
            buf = full;
          }
          if (lost()) return up.abort(why());
          ws.send(buf);
          sent += want;
          up.progress(sent - ws.bufferedAmount);
        }
        await this.drained(ws, 0);
        if (lost()) return up.abort(why());
        up.done(shrank);
      } finally {
        this.midFrame = false;
        if (this.ackWanted) this.ack();
      }
    }

    // drained waits until ws holds at most limit bytes unsent, or is no
    // longer the session's.
    drained(ws, limit) {
      let left = ws.bufferedAmount;
      return new Promise((resolve) => {
        const check = () => {
          // Bytes leaving the socket's buffer mean the server takes
          // them: the heartbeat counts it as heard.
          if (ws.bufferedAmount < left) this.heardAt = performance.now();
          left = ws.bufferedAmount;
          if (this.over || this.ws !== ws || ws.bufferedAmount <= limit) resolve();
          else setTimeout(check, 10);
        };
        check();
      });
    }
  }

  // Download is a file being received: its bytes are kept, folded into a
  // Blob now and then, until it is complete; then it is offered as a link
  // named as the contract names a saved file: <own name>_<filename>.
  class Download {
    constructor(me, sender, filename, size) {
      this.saveAs = `${me}_${filename}`;
      this.filename = filename;
      this.size = size;
      this.got = 0;
      this.parts = [];
      this.partBytes = 0;
      this.blob = null;
      const box = document.createElement('span');
      box.className = 'text';
      this.label = document.createElement('span');
      this.label.textContent = `${filename} (${formatSize(size)}) — receiving`;
      this.bar = document.createElement('progress');
      this.bar.max = Math.max(size, 1);
      this.bar.value = 0;
      this.bar.setAttribute('aria-label', `Receiving ${filename}`);
      box.append(this.label, this.bar);
      this.li = addEntry('msg file incoming', sender, 'sent a file', box);
      this.box = box;
    }
    add(data) {
      this.parts.push(data);
      this.got += data.length;
      this.partBytes += data.length;
      if (this.partBytes >= FOLD_BYTES) this.fold();
      this.bar.value = this.got;
    }
    fold() {
      this.blob = new Blob(this.blob ? [this.blob, ...this.parts] : this.parts);
      this.parts = [];
      this.partBytes = 0;
    }
    finish() {
      this.fold();
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([this.blob], { type: 'application/octet-stream' }));
      a.download = this.saveAs;
      a.textContent = `Save ${this.saveAs}`;
      a.className = 'download';
      this.label.textContent = `${this.filename} (${formatSize(this.size)}) `;
      this.bar.remove();
      this.box.append(a);
      this.blob = null;
    }
    abort(why) {
      this.parts = [];
      this.blob = null;
      this.bar.remove();
      this.label.textContent = `${this.filename}: not received (${why})`;
      this.li.classList.add('bad');
    }
  }

  // Upload shows a file being sent.
  class Upload {
    constructor(names, file, filename) {
      this.filename = filename;
      this.size = file.size;
      const box = document.createElement('span');
      box.className = 'text';
      this.label = document.createElement('span');
      // The page names the file as the user picked it throughout, and
      // says under which name it goes when the protocol's rule changed it.
      const renamed = filename !== file.name ? ` (sent as ${filename})` : '';
      this.shown = `${file.name}${renamed}`;
      this.label.textContent = `${this.shown} (${formatSize(file.size)}) — waiting`;
      this.bar = document.createElement('progress');
      this.bar.max = Math.max(file.size, 1);
      this.bar.value = 0;
      this.bar.setAttribute('aria-label', `Sending ${filename}`);
      box.append(this.label, this.bar);
      this.box = box;
      this.li = addEntry('mine file outgoing', 'you', `file to ${names.join(', ')}`, box);
      this.started = false;
    }
    progress(n) {
      if (!this.started) {
        this.started = true;
        this.label.textContent = `${this.shown} (${formatSize(this.size)}) — sending`;
      }
      this.bar.value = Math.max(0, n);
    }
    done(shrank) {
      this.bar.remove();
      this.label.textContent = `${this.shown} (${formatSize(this.size)}) — sent`;
      if (shrank) this.label.textContent += ' (the file changed while it was read: its end was sent as zeros)';
      this.li.classList.add('sent');
    }
    abort(why) {
      this.bar.remove();
      this.label.textContent = `${this.shown}: not sent (${why})`;
      this.li.classList.add('bad');
    }
  }

  // ---- The user list and recipients ------------------------------------
  function renderUsers() {
    const s = session;
    for (const n of [...s.selected]) if (!s.users.includes(n)) s.selected.delete(n);
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.user : undefined;
    el.users.replaceChildren();
    for (const name of s.users) {
      const li = document.createElement('li');
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.dataset.user = name;
      box.checked = s.selected.has(name);
      box.addEventListener('change', () => {
        if (box.checked) s.selected.add(name);
        else s.selected.delete(name);
        renderTo();
      });
      const span = document.createElement('span');
      span.className = 'name';
      span.textContent = name;
      label.append(box, span);
      if (name === s.name) {
        const me = document.createElement('span');
        me.className = 'me';
        me.textContent = '(you)';
        label.append(me);
      }
      li.append(label);
      el.users.append(li);
      if (name === focused) box.focus();
    }
    el.userCount.textContent = `(${s.users.length})`;
    renderTo();
  }

  function recipients() {
    return session.users.filter((n) => session.selected.has(n));
  }

  function renderTo() {
    const r = recipients();
    el.to.textContent = r.length ? r.join(', ') : 'nobody yet: tick users in the list';
  }

  function checkRecipients() {
    const r = recipients();
    if (r.length === 0) return [null, 'Tick at least one user in the list first.'];
    if (r.length > MAX_RECIPIENTS) return [null, `At most ${MAX_RECIPIENTS} recipients.`];
    return [r, ''];
  }

  function sendFiles(files) {
    el.sendError.textContent = '';
    if (!session || !session.joined || session.over) return;
    const [r, problem] = checkRecipients();
    if (!r) {
      el.sendError.textContent = problem;
      return;
    }
    for (const f of files) {
      if (f.size > maxFileSize) {
        el.sendError.textContent = `${f.name} is larger than this server takes (${formatSize(maxFileSize)}).`;
        continue;
      }
      session.sendFile(r, f);
    }
  }

  // ---- Wiring ----------------------------------------------------------
  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = el.name.value.trim();
    const problem = nameProblem(name);
    if (problem) {
      el.joinError.textContent = problem;
      el.name.focus();
      return;
    }
    el.joinError.textContent = '';
    el.join.disabled = true;
    el.name.disabled = true;
    setStatus('Joining…', '');
    // The conversation so far stays: joining again continues it.
    if (el.log.childElementCount > 0) note(`Joining again as ${name}…`);
    setOnline(true);
    session = new Session(name, true);
  });

  el.sendForm.addEventListener('submit', (e) => {
    e.preventDefault();
    el.sendError.textContent = '';
    if (!session || session.over) return;
    const text = el.text.value;
    if (text.trim() === '') return;
    const [r, problem] = checkRecipients();
    if (!r) {
      el.sendError.textContent = problem;
      return;
    }
    const bad = textProblem(text);
    if (bad) {
      el.sendError.textContent = bad;
      return;
    }
    session.sendMessage(r, text);
    el.text.value = '';
  });

  el.pickFile.addEventListener('click', () => el.file.click());
  el.file.addEventListener('change', () => {
    sendFiles([...el.file.files]);
    el.file.value = '';
  });
  el.refresh.addEventListener('click', () => session && session.requestList());
  el.all.addEventListener('click', () => {
    // Not yourself: the server would echo a message to you, and it
    // would show twice in your own log.
    for (const n of session.users) if (n !== session.name) session.selected.add(n);
    renderUsers();
  });
  el.none.addEventListener('click', () => {
    session.selected.clear();
    renderUsers();
  });
  el.leave.addEventListener('click', () => session && session.leave());
  // A page closed or reloaded quits (it cannot resume: its state goes
  // with it).
  window.addEventListener('pagehide', () => session && session.joined && session.pageGone());
  el.rejoin.addEventListener('click', () => {
    el.banner.hidden = true;
    const name = session ? session.name : '';
    setStatus('Not joined', '');
    showJoin('');
    el.name.value = name;
  });

  let dragDepth = 0;
  const dragHasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!dragHasFiles(e) || !session || !session.joined || session.over) return;
    e.preventDefault();
    dragDepth++;
    el.drop.hidden = false;
  });
  document.addEventListener('dragover', (e) => {
    if (dragHasFiles(e)) e.preventDefault();
  });
  document.addEventListener('dragleave', () => {
    if (dragDepth > 0 && --dragDepth === 0) el.drop.hidden = true;
  });
  document.addEventListener('drop', (e) => {
    if (!dragHasFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    el.drop.hidden = true;
    sendFiles([...e.dataTransfer.files]);
  });

  setInterval(() => {
    if (session && session.joined && !session.over && !session.presence && document.visibilityState === 'visible') session.requestList();
  }, LIST_EVERY_MS);
  document.addEventListener('visibilitychange', () => {
    if (session && session.joined && !session.over && !session.presence && document.visibilityState === 'visible') session.requestList();
  });

  fetch('config.json').then((r) => r.json()).then((c) => {
    if (Number.isSafeInteger(c.maxFileSize) && c.maxFileSize > 0) maxFileSize = c.maxFileSize;
    if (Number.isSafeInteger(c.heartbeatMs) && c.heartbeatMs >= 100) heartbeatTimeoutMs = c.heartbeatMs;
    if (Array.isArray(c.peers)) {
      peers = c.peers.filter((u) => typeof u === 'string' && /^https?:\/\/[^/]+\/$/.test(u) &&
        (location.protocol !== 'https:' || u.startsWith('https:')) && u !== new URL('/', location.href).href);
    }
  }).catch(() => {});

  setStatus('Not joined', '');
  showJoin('');
})();
