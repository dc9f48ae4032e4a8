// The chat's web client: the page and the session. It speaks the frames of
// PROTOCOL.md (codec.js) over a WebSocket whose binary messages carry the
// bytes of the TCP stream (see docs/WEB.md). Everything a peer sends is put
// on the page as text (textContent), never as HTML.
'use strict';

(() => {
  const {
    MAX_RECIPIENTS, enc, dec, nameProblem, textProblem, safeFilename, frame, splitFields, Decoder,
    StreamError,
  } = globalThis.chatCodec;
  const UPLOAD_SLICE = 1 << 20; // bytes of a file read and sent at a time
  const UPLOAD_HIGH_WATER = 4 << 20; // wait while this much is buffered by the socket
  const LIST_EVERY_MS = 5000;
  const FOLD_BYTES = 8 << 20; // received bytes folded into a Blob at a time

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
      this.decoder = new Decoder({
        frame: (t, p) => this.onFrame(t, p),
        fileBegin: (s, f, n) => { this.plainFile = this.beginDownload(s, f, n); },
        fileData: (d) => this.plainFile.add(d),
        fileEnd: () => { this.plainFile.finish(); this.plainFile = null; },
      });
      const url = new URL('ws', location.href);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      this.ws = new WebSocket(url);
      this.ws.binaryType = 'arraybuffer';
      this.ws.onopen = () => this.onOpen();
      this.ws.onmessage = (e) => this.onMessage(e);
      this.ws.onclose = () => this.onClose();
      this.ws.onerror = () => {};
    }

    send(bytes) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
    }

    // queue runs op after every send queued before it.
    queue(op) {
      this.outbox = this.outbox.then(() => (this.over ? undefined : op())).catch((err) => {
        note(`Could not send: ${err.message}`, true);
      });
      return this.outbox;
    }

    onOpen() {
      if (this.extensions) {
        // The server answers a join that stands with the names online
        // (online): the page asks for no list, which would print a
        // request_users_list line on the server's stdout for a command
        // nobody typed.
        this.send(frame('ext_hello', 'chunked-file presence not-online online'));
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
      this.queue(() => this.send(frame('request_users_list')));
    }

    onMessage(e) {
      if (this.over) return;
      try {
        this.decoder.feed(new Uint8Array(e.data));
      } catch (err) {
        if (!(err instanceof StreamError)) console.error(err);
        this.end(`Disconnected: the server sent something this page cannot read (${err.message}).`);
      }
    }

    onFrame(type, p) {
      switch (type) {
        case 'ext_hello':
          this.helloAnswered = true;
          this.presence = dec.decode(p).split(' ').includes('presence');
          // A server without online: the answer to a list shows the
          // join stood, as with no extensions.
          if (!dec.decode(p).split(' ').includes('online')) this.requestList();
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

    noteSender(name) {
      if (!this.users.includes(name)) this.requestList();
    }

    refused(text) {
      this.over = true;
      this.ws.close();
      if (this.joined) {
        this.end(`Disconnected: ${text}`);
      } else {
        setStatus('Not joined', 'offline');
        showJoin(text);
      }
    }

    onClose() {
      if (this.over) return;
      if (!this.joined) {
        this.over = true;
        setStatus('Not joined', 'offline');
        showJoin('Could not join: the server closed the connection. It may be down, or too many connections come from your address.');
        return;
      }
      this.end('Disconnected: connection to the server lost.');
    }

    // end ends the session, keeping the page as it was under a banner.
    end(text) {
      const wasOver = this.over;
      this.over = true;
      if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
      for (const d of this.files.values()) d.abort('the connection ended');
      this.files.clear();
      if (this.plainFile) this.plainFile.abort('the connection ended');
      this.plainFile = null;
      if (wasOver && !this.joined) return;
      setStatus('Offline', 'offline');
      setOnline(false);
      showBanner(text, true);
    }

    leave() {
      if (this.over) return;
      this.queue(() => {
        this.send(frame('disconnect', this.name));
        this.over = true;
        setStatus('Left', '');
        setOnline(false);
        showBanner('You left the chat.', false);
        // The server closes once it has sent what it had for us.
      });
    }

    beginDownload(sender, filename, size) {
      this.noteSender(sender);
      return new Download(this.name, sender, filename, size);
    }

    // sendMessage shows the message and sends it. One typed while a file
    // is being sent goes after the file (one frame at a time on the
    // stream): it shows as waiting until then, and as sent after.
    sendMessage(names, text) {
      const li = addEntry('mine', 'you', `to ${names.join(', ')}`, text);
      let state = null;
      if (this.uploading > 0) {
        li.classList.add('queued');
        state = document.createElement('span');
        state.className = 'state';
        state.textContent = ' · waiting for the file to go first';
        li.querySelector('.meta').append(state);
      }
      this.queue(() => {
        this.send(frame('send_message', `${names.length} ${names.join(' ')} `, text));
        if (state) {
          li.classList.remove('queued');
          state.textContent = ' · sent';
        }
      });
    }

    sendFile(names, file) {
      const filename = safeFilename(file.name);
      const up = new Upload(names, file, filename);
      this.uploading++;
      this.queue(() => this.upload(up, names, file, filename)).finally(() => { this.uploading--; });
    }

    // upload sends one send_file frame, its content read from file in
    // slices as the socket takes them.
    async upload(up, names, file, filename) {
      const head = enc.encode(`${names.length} ${names.join(' ')} ${filename} `);
      const size = file.size;
      this.send(enc.encode(`send_file ${head.length + size} `));
      this.send(head);
      let sent = 0;
      let shrank = false;
      while (sent < size) {
        await this.drained(UPLOAD_HIGH_WATER);
        if (this.over) return up.abort('the connection ended');
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
        this.send(buf);
        sent += want;
        up.progress(sent - this.ws.bufferedAmount);
      }
      await this.drained(0);
      if (this.over) return up.abort('the connection ended');
      up.done(shrank);
    }

    // drained waits until the socket holds at most limit bytes unsent.
    drained(limit) {
      return new Promise((resolve) => {
        const check = () => {
          if (this.over || this.ws.bufferedAmount <= limit) resolve();
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
  }).catch(() => {});

  setStatus('Not joined', '');
  showJoin('');
})();
