package browser

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// codecScript runs the page's codec (codec.js) in the browser: a stream of
// frames decoded whole, a byte at a time and in random pieces; streams it
// must refuse; and the rules for names, filenames and texts.
const codecScript = `(() => {
  const c = globalThis.chatCodec;
  const enc = c.enc;
  const cat = (...parts) => {
    const bs = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
    const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of bs) { out.set(b, at); at += b.length; }
    return out;
  };
  const content = new Uint8Array(300);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 255;
  const stream = cat(
    c.frame('ext_hello', 'chunked-file'),
    c.frame('response_users_list', '2 ann bob'),
    c.frame('forward_message', '1 bob h\u00e9llo  w\u00f6rld \t\u2713'),
    c.frame('zz_future', 'ignored bytes'),
    c.frame('forward_file', '1 bob a.bin ', content),
    c.frame('forward_file', '1 bob empty.txt '),
    c.frame('file_begin', '7 bob big.bin 5'),
    c.frame('file_chunk', '7 ', new Uint8Array([1, 2, 32, 4, 5])),
    c.frame('file_end', '7'),
    c.frame('err_server_full'),
    c.frame('session', '0123456789abcdef0123456789abcdef 30000'),
    c.frame('later_frame', 'an uncounted extension frame the page does not know'),
    c.frame('resumed', '0'),
  );
  const run = (size) => {
    const ev = [];
    const d = new c.Decoder({
      frame: (t, p) => ev.push([t, Array.from(p).join(',')]),
      fileBegin: (s, f, n) => ev.push(['begin', s + ' ' + f + ' ' + n]),
      fileData: (b) => ev.push(['data', Array.from(b).join(',')]),
      fileEnd: () => ev.push(['end', '']),
    });
    for (let i = 0; i < stream.length;) {
      const n = Math.min(size(), stream.length - i);
      d.feed(stream.slice(i, i + n));
      i += n;
    }
    const merged = []; // a file's data, however split, as one event
    for (const e of ev) {
      const last = merged[merged.length - 1];
      if (e[0] === 'data' && last && last[0] === 'data') last[1] += ',' + e[1];
      else merged.push(e.slice());
    }
    return merged;
  };
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const bad = (s) => {
    try {
      new c.Decoder({ frame() {}, fileBegin() {}, fileData() {}, fileEnd() {} }).feed(enc.encode(s));
      return 'accepted';
    } catch (e) {
      return e instanceof c.StreamError ? 'refused' : 'threw ' + e;
    }
  };
  const verdict = (p) => (p === '' ? 'ok' : 'bad');
  return {
    whole: run(() => stream.length),
    bytes: run(() => 1),
    random: run(() => 1 + Math.floor(rnd() * 40)),
    bad: ['send_message 01 x', 'x'.repeat(40), 'join -1 ', 'forward_message 99999999 ', 'forward_file 10 2 a b cdef', 'a ' + 'b'.repeat(25)].map(bad),
    names: ['ann', 'a b', 'a/b', '.', '..', 'x'.repeat(32), 'x'.repeat(33), 'zero\u200bwidth', '\u00e9'.repeat(32), '<img_src=x>', ''].map(c.nameProblem).map(verdict),
    files: ['my report.pdf', '..', 'a/b\\c.txt', 'tab\tname', 'x'.repeat(300) + '.pdf', '\u00e9'.repeat(150)].map(c.safeFilename),
    counted: [...c.COUNTED].sort(),
    texts: ['hi\tthere', 'bell\u0007', 'x'.repeat(65536), 'x'.repeat(65537), 'line\nbreak', '\u00e9'.repeat(32768)].map(c.textProblem).map(verdict),
  };
})()`

type codecResult struct {
	Whole, Bytes, Random [][2]string
	Bad, Names, Files    []string
	Texts                []string
	Counted              []string
}

// TestBrowserCodec: the page's codec decodes frames however the bytes are
// split, streams files, skips unknown types, refuses undecodable streams,
// and applies the protocol's rules to names, filenames and texts.
func TestBrowserCodec(t *testing.T) {
	needBrowser(t)
	srv := startServer(t)
	tb := openTab(t, newBrowser(t), srv.pageURL)
	res := eval[codecResult](tb, codecScript)

	byteList := func(b []byte) string {
		s := make([]string, len(b))
		for i, v := range b {
			s[i] = strconv.Itoa(int(v))
		}
		return strings.Join(s, ",")
	}
	content := make([]byte, 300)
	for i := range content {
		content[i] = byte(i * 7)
	}
	want := [][2]string{
		{"ext_hello", byteList([]byte("chunked-file"))},
		{"response_users_list", byteList([]byte("2 ann bob"))},
		{"forward_message", byteList([]byte("1 bob héllo  wörld \t✓"))},
		{"begin", "bob a.bin 300"},
		{"data", byteList(content)},
		{"end", ""},
		{"begin", "bob empty.txt 0"},
		{"end", ""},
		{"file_begin", byteList([]byte("7 bob big.bin 5"))},
		{"file_chunk", byteList([]byte("7 \x01\x02 \x04\x05"))},
		{"file_end", byteList([]byte("7"))},
		{"err_server_full", ""},
		{"session", byteList([]byte("0123456789abcdef0123456789abcdef 30000"))},
		{"resumed", byteList([]byte("0"))},
	}
	for name, got := range map[string][][2]string{"whole": res.Whole, "a byte at a time": res.Bytes, "random pieces": res.Random} {
		if mustJSON(got) != mustJSON(want) {
			t.Errorf("decoding %s:\n got %v\nwant %v", name, got, want)
		}
	}
	checks := []struct {
		what      string
		got, want []string
	}{
		{"bad streams", res.Bad, []string{"refused", "refused", "refused", "refused", "refused", "refused"}},
		{"names", res.Names, []string{"ok", "bad", "bad", "bad", "bad", "ok", "bad", "bad", "ok", "ok", "bad"}},
		{"filenames", res.Files, []string{"my_report.pdf", "file", "a_b_c.txt", "tab_name", strings.Repeat("x", 196) + ".pdf", strings.Repeat("é", 100)}},
		{"texts", res.Texts, []string{"ok", "bad", "ok", "bad", "bad", "ok"}},
		// The counted types (docs/PROTOCOL.md, "resume") a server sends
		// the page: not ext_hello, session, resumed, resume_failed, the
		// err_* or the file frames.
		{"counted types", res.Counted, []string{"forward_message", "not_online", "online", "presence", "response_users_list"}},
	}
	for _, c := range checks {
		if mustJSON(c.got) != mustJSON(c.want) {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
