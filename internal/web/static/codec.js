// The chat protocol for the web client: the frames of PROTOCOL.md
// (encoding, and a decoder that takes bytes as they come), and the rules
// of its names and texts. app.js uses it through globalThis.chatCodec.
'use strict';

globalThis.chatCodec = (() => {
  // ---- Limits of PROTOCOL.md section 3 -------------------------------
  const MAX_NAME_CHARS = 32;
  const MAX_TEXT_BYTES = 65536;
  const MAX_FILENAME_BYTES = 200;
  const MAX_RECIPIENTS = 1024;
  const SMALL_FRAME = 1 << 20; // largest payload taken whole (lists, messages, chunks)

  const enc = new TextEncoder();
  const dec = new TextDecoder('utf-8');
  // Unicode White_Space, controls (Cc) and format characters (Cf), and
  // both slashes: none may be in a username or filename.
  const FORBIDDEN = /[\p{White_Space}\p{Cc}\p{Cf}/\\]/u;
  const FORBIDDEN_ALL = /[\p{White_Space}\p{Cc}\p{Cf}/\\]/gu;
  const TEXT_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/u;

  // nameProblem returns why name breaks the username rule, or ''.
  function nameProblem(name) {
    const n = [...name].length;
    if (n === 0) return 'Type a name.';
    if (n > MAX_NAME_CHARS) return 'A name has at most 32 characters.';
    if (!name.isWellFormed()) return 'That name is not valid text.';
    if (FORBIDDEN.test(name)) return 'A name cannot contain spaces, slashes, or control or invisible characters.';
    if (name === '.' || name === '..') return 'A name cannot be "." or "..".';
    return '';
  }

  // textProblem returns why text cannot be a message's text, or ''.
  function textProblem(text) {
    if (!text.isWellFormed() || TEXT_CONTROL.test(text)) return 'A message cannot contain control characters.';
    if (enc.encode(text).length > MAX_TEXT_BYTES) return 'A message has at most 65,536 bytes.';
    return '';
  }

  // safeFilename returns a filename the protocol accepts for name: what
  // it forbids becomes "_", and a long name is cut to 200 bytes, keeping
  // its extension when it can.
  function safeFilename(name) {
    let s = (name.isWellFormed() ? name : name.toWellFormed()).replace(FORBIDDEN_ALL, '_');
    if (s === '' || s === '.' || s === '..') s = 'file';
    if (enc.encode(s).length <= MAX_FILENAME_BYTES) return s;
    const dot = s.lastIndexOf('.');
    let ext = dot > 0 ? s.slice(dot) : '';
    if (enc.encode(ext).length > 40) ext = '';
    const room = MAX_FILENAME_BYTES - enc.encode(ext).length;
    let base = '';
    for (const ch of s.slice(0, s.length - ext.length)) {
      if (enc.encode(base + ch).length > room) break;
      base += ch;
    }
    return base + ext;
  }

  // ---- Framing: <type> SP <length> SP <payload> -----------------------
  function frame(type, ...parts) {
    const bytes = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
    const length = bytes.reduce((n, b) => n + b.length, 0);
    const head = enc.encode(`${type} ${length} `);
    const out = new Uint8Array(head.length + length);
    out.set(head, 0);
    let at = head.length;
    for (const b of bytes) {
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  // ByteQueue holds received bytes not yet decoded.
  class ByteQueue {
    constructor() {
      this.parts = [];
      this.length = 0;
    }
    push(u8) {
      if (u8.length > 0) {
        this.parts.push(u8);
        this.length += u8.length;
      }
    }
    // indexOf returns the position of byte b at or after from and before
    // limit, or -1.
    indexOf(b, from, limit) {
      let base = 0;
      for (const p of this.parts) {
        const end = Math.min(p.length, limit - base);
        for (let i = Math.max(0, from - base); i < end; i++) if (p[i] === b) return base + i;
        base += p.length;
        if (base >= limit) break;
      }
      return -1;
    }
    // take removes and returns the first n bytes (n <= length).
    take(n) {
      const first = this.parts[0];
      if (n === 0) return new Uint8Array(0);
      if (first.length >= n) {
        this.length -= n;
        if (first.length === n) this.parts.shift();
        else this.parts[0] = first.subarray(n);
        return first.subarray(0, n);
      }
      const out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const p = this.parts[0];
        const k = Math.min(p.length, n - at);
        out.set(p.subarray(0, k), at);
        at += k;
        if (k === p.length) this.parts.shift();
        else this.parts[0] = p.subarray(k);
      }
      this.length -= n;
      return out;
    }
    // takeSome removes and returns up to n bytes without copying.
    takeSome(n) {
      const first = this.parts[0];
      return this.take(Math.min(n, first.length));
    }
  }

  class StreamError extends Error {}

  // Decoder turns received bytes into frames. A forward_file is streamed
  // (its content is handed on as it comes, never held whole here); other
  // frames are handed on whole, and may be at most SMALL_FRAME bytes.
  class Decoder {
    constructor(handlers) {
      this.h = handlers;
      this.q = new ByteQueue();
      this.state = 'header';
      this.type = '';
      this.length = 0;
      this.left = 0;
    }
    feed(u8) {
      this.q.push(u8);
      for (;;) {
        switch (this.state) {
          case 'header':
            if (!this.header()) return;
            break;
          case 'payload': {
            if (this.q.length < this.length) return;
            const p = this.q.take(this.length);
            this.state = 'header';
            this.h.frame(this.type, p);
            break;
          }
          case 'file-head':
            if (!this.fileHead()) return;
            break;
          case 'file-body':
          case 'skip': {
            if (this.left > 0) {
              if (this.q.length === 0) return;
              const p = this.q.takeSome(this.left);
              this.left -= p.length;
              if (this.state === 'file-body') this.h.fileData(p);
            }
            if (this.left === 0) {
              if (this.state === 'file-body') this.h.fileEnd();
              this.state = 'header';
            }
            break;
          }
        }
      }
    }
    header() {
      const sp1 = this.q.indexOf(0x20, 0, 33);
      if (sp1 < 0) {
        if (this.q.length >= 33) throw new StreamError('bad frame type');
        return false;
      }
      const sp2 = this.q.indexOf(0x20, sp1 + 1, sp1 + 20);
      if (sp2 < 0) {
        if (this.q.length >= sp1 + 20) throw new StreamError('bad frame length');
        return false;
      }
      const head = dec.decode(this.q.take(sp2 + 1));
      const type = head.slice(0, sp1);
      const len = head.slice(sp1 + 1, sp2);
      if (!/^[a-z0-9_]{1,32}$/.test(type) || !/^(0|[1-9][0-9]{0,17})$/.test(len)) {
        throw new StreamError('bad frame header');
      }
      const length = Number(len);
      if (type === 'forward_file') {
        this.left = length;
        this.state = 'file-head';
        return true;
      }
      if (!KNOWN_TYPES.has(type)) {
        this.left = length; // a frame this page does not know is skipped
        this.state = length > 0 ? 'skip' : 'header';
        return true;
      }
      if (length > SMALL_FRAME) throw new StreamError(`${type} frame of ${length} bytes`);
      this.type = type;
      this.length = length;
      this.state = 'payload';
      return true;
    }
    // fileHead reads "1 <sender> <filename> " at the start of a forward_file.
    fileHead() {
      const limit = Math.min(this.left, 2 + 4 * MAX_NAME_CHARS + 1 + MAX_FILENAME_BYTES + 1);
      const third = this.nthSpace(3, limit);
      if (third < 0) {
        if (this.q.length >= limit) throw new StreamError('bad forward_file head');
        return false;
      }
      const head = dec.decode(this.q.take(third + 1));
      const f = head.split(' ');
      if (f[0] !== '1' || f.length !== 4) throw new StreamError('bad forward_file head');
      this.left -= third + 1;
      this.h.fileBegin(f[1], f[2], this.left);
      this.state = 'file-body';
      return true;
    }
    nthSpace(n, limit) {
      let seen = 0;
      let base = 0;
      for (const p of this.q.parts) {
        const end = Math.min(p.length, limit - base);
        for (let i = 0; i < end; i++) {
          if (p[i] === 0x20 && ++seen === n) return base + i;
        }
        base += p.length;
        if (base >= limit) break;
      }
      return -1;
    }
  }

  const KNOWN_TYPES = new Set([
    'ext_hello', 'response_users_list', 'forward_message', 'file_begin', 'file_chunk', 'file_end',
    'file_abort', 'err_unknown_message', 'err_server_full', 'err_username_unavailable', 'presence',
    'not_online', 'online', 'session', 'resumed', 'resume_failed', 'ping', 'pong', 'cursor', 'received',
  ]);

  // COUNTED lists the frames this page receives that count for the resume
  // extension (docs/PROTOCOL.md, "resume"): every frame the server sends
  // but the negotiation's, resume's own, the err_* and the file frames.
  // Of those, these are the ones a server sends the page; a frame of a
  // type the page does not know (a later extension's, uncounted) is
  // skipped above and not counted.
  const COUNTED = new Set(['response_users_list', 'forward_message', 'not_online', 'presence', 'online']);

  // splitFields splits the first n space-separated fields off p (bytes);
  // the rest follows them.
  function splitFields(p, n) {
    const out = [];
    let start = 0;
    for (let i = 0; i < n; i++) {
      const sp = p.indexOf(0x20, start);
      if (sp < 0) return null;
      out.push(dec.decode(p.subarray(start, sp)));
      start = sp + 1;
    }
    out.push(p.subarray(start));
    return out;
  }

  // ---- The page's own frames, counted: the taken feature ----------------
  // What the page sent that the server has not said it took
  // (docs/PROTOCOL.md, "taken"; docs/WEB.md, "A lost connection"; issue
  // 22). A server that grants taken counts the page's messages and list
  // requests it has taken (read whole and acted on), and says the count
  // now and then (received) and in resumed. The page numbers the same
  // frames as it writes them and keeps each until a count covers it; a
  // resume sends again, before anything new, exactly the frames after the
  // server's count. Without it a message handed to a connection already
  // dead but not yet seen to be was lost without a word. SendLog is the
  // terminal client's sendLog (internal/client/sendlog.go) line for line:
  // the same rules and the same bounds, so that both behave alike on
  // every resume.

  // MAX_SENT_BYTES and MAX_SENT_FRAMES bound what the page keeps to send
  // again, as the terminal client's. A live connection keeps the frames
  // of a round trip (the server says its count when the page's input
  // pauses, and every 64 frames); the bound matters only while a
  // connection is dead and not yet seen to be (until the heartbeat sees
  // it: 15 s by default), when a browser takes every send into its
  // socket's buffer, which never fills.
  const MAX_SENT_BYTES = 1 << 20;
  const MAX_SENT_FRAMES = 4096;
  // MAX_LOST_LABELS is how many of the frames let go of unconfirmed (the
  // last) are named if they turn out lost; LABEL_CHARS how much of a
  // message a label shows.
  const MAX_LOST_LABELS = 5;
  const LABEL_CHARS = 40;

  // SendLog is the page's frames the server has not said it took,
  // numbered 1, 2, 3... in the order they are written, as the server
  // counts them. Each is kept with a label that names it to a person
  // (messageLabel; '' for a frame the person did not type, a list
  // request).
  class SendLog {
    constructor() {
      this.next = 1; // the number the next frame gets
      this.known = 0; // the server's count last learnt
      this.first = 1; // the number of kept[0]
      this.kept = []; // {frame, label}: the frames numbered first..next-1
      this.bytes = 0; // the bytes of kept
      this.lost = []; // {n, label}: the last frames let go of unconfirmed (numbered known+1..first-1), at most MAX_LOST_LABELS
    }
    // add numbers frame, which is being written, and keeps it, letting go
    // of the oldest kept past the bounds.
    add(frame, label) {
      this.kept.push({ frame, label });
      this.bytes += frame.length;
      this.next++;
      while (this.kept.length > 1 && (this.bytes > MAX_SENT_BYTES || this.kept.length > MAX_SENT_FRAMES)) {
        if (this.lost.length === MAX_LOST_LABELS) this.lost.shift();
        const f = this.kept.shift();
        this.lost.push({ n: this.first, label: f.label });
        this.bytes -= f.frame.length;
        this.first++;
      }
    }
    // took takes the server's count n of the frames it has taken (a
    // received), and lets go of those. It returns why a count is refused
    // (past what was sent: a broken server), or ''; one behind what is
    // known is stale, and ignored.
    took(n) {
      if (n >= this.next) return `the server says it took ${n} frames of ${this.next - 1} sent`;
      if (n <= this.known) return '';
      this.known = n;
      while (this.kept.length > 0 && this.first <= n) {
        this.bytes -= this.kept.shift().frame.length;
        this.first++;
      }
      if (this.first <= n) this.first = n + 1;
      this.lost = this.lost.filter((x) => x.n > n);
      return '';
    }
    // resumeFrom is the session's resume: the server has taken the first
    // n frames, exactly or at least (a node that took the session over
    // from one whose count it does not know): either way the frames after
    // n and after the last count learnt are sent again. It returns
    // {again, lost, labels}: the frames to send again, in order, before
    // anything new; how many frames after n were let go of (past the
    // bounds) and so cannot be, with the labels of the last of them. From
    // now on the frames are numbered after n. A count past what was sent
    // (a broken server) is taken as all of it.
    //
    // An exact count does not confirm the frames up to it: a cluster's
    // node confirms a frame only once the other nodes know what it did,
    // and says resumed with what it took. The frames taken and not
    // confirmed stay kept, not sent again, until a received covers them:
    // if that node dies too, they are sent again where the session
    // resumes next.
    resumeFrom(n, exact) {
      n = Math.min(n, this.next - 1);
      // Frames the server said it took (known) were taken, whatever a
      // node that lost count says now.
      const from = Math.max(n, this.known);
      let lost = 0;
      const labels = [];
      if (this.first > from + 1) {
        lost = this.first - 1 - from;
        for (const x of this.lost) if (x.n > from) labels.push(x.label);
      }
      const held = [];
      const keep = [];
      this.kept.forEach((f, i) => {
        const num = this.first + i;
        if (num > from) keep.push(f);
        else if (exact && num > this.known) held.push(f); // numbered up to n, without a gap
      });
      this.kept = [...held, ...keep];
      this.bytes = this.kept.reduce((b, f) => b + f.frame.length, 0);
      if (held.length > 0) {
        this.lost = this.lost.filter((x) => x.n <= from);
      } else {
        this.known = n;
        this.lost = [];
      }
      this.first = n + 1 - held.length;
      this.next = n + keep.length + 1;
      return { again: keep, lost, labels };
    }
    // pending returns how many frames are kept.
    get pending() {
      return this.kept.length;
    }
  }

  // messageLabel names a message to names of text for a person, as the
  // terminal client does: `to bob, carol: "the text…"`, the text cut at
  // LABEL_CHARS characters and the names after the third counted.
  function messageLabel(names, text) {
    const chars = [...text];
    if (chars.length > LABEL_CHARS) text = chars.slice(0, LABEL_CHARS).join('') + '\u2026';
    let to = names.slice(0, 3).join(', ');
    if (names.length > 3) to += ` and ${names.length - 3} more`;
    return `to ${to}: ${JSON.stringify(text)}`;
  }

  // parseCount decodes a count (received, and the fields of resumed): at
  // most 19 digits, no leading zero, as the server's parser. It returns
  // -1 for anything else.
  function parseCount(s) {
    return /^(0|[1-9][0-9]{0,18})$/.test(s) ? Number(s) : -1;
  }

  // parseResumed decodes a resumed payload (bytes): `<missed>` (has
  // false: no count of the page's frames), `<missed> <n>` (exact) or
  // `<missed> ~<n>` (a lower bound). It returns null for a malformed one.
  function parseResumed(p) {
    const m = /^([0-9]+)(?: (~?)([0-9]+))?$/.exec(dec.decode(p));
    if (!m) return null;
    const missed = parseCount(m[1]);
    if (missed < 0) return null;
    if (m[3] === undefined) return { missed, taken: 0, exact: false, has: false };
    const taken = parseCount(m[3]);
    if (taken < 0) return null;
    return { missed, taken, exact: m[2] === '', has: true };
  }

  return Object.freeze({
    MAX_RECIPIENTS, SMALL_FRAME, enc, dec, nameProblem, textProblem, safeFilename, frame,
    splitFields, Decoder, StreamError, COUNTED, SendLog, MAX_SENT_BYTES, MAX_SENT_FRAMES,
    MAX_LOST_LABELS, messageLabel, parseCount, parseResumed,
  });
})();
