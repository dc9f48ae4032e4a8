package protocol

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Errors returned by Reader.
var (
	// ErrMalformed reports a header or payload field that breaks
	// PROTOCOL.md. Every error of this package about input that breaks
	// the rules wraps it; other errors come from the stream itself.
	ErrMalformed = errors.New("malformed frame")
	// ErrTooLong reports a field longer than its limit.
	ErrTooLong error = ruleError("field too long")
)

// ruleError is an error about input that breaks PROTOCOL.md: it wraps
// ErrMalformed. Each sentinel of this type has its own text, which is
// what tells them apart.
type ruleError string

// Error returns the error's text.
func (e ruleError) Error() string { return string(e) }

// Unwrap returns ErrMalformed.
func (e ruleError) Unwrap() error { return ErrMalformed }

// Header is the decoded start of a frame.
type Header struct {
	// Type is the message type; Unknown if the token names no known type.
	Type Type
	// Name is the type token as sent (useful when Type is Unknown).
	Name string
	// Length is the payload length in bytes.
	Length int64
}

// Size returns the bytes h took on the wire.
func (h Header) Size() int64 { return HeaderSize(len(h.Name), h.Length) }

// HeaderSize returns the bytes of a frame header whose type token has
// typeLen bytes and whose payload has length bytes: the token, a space,
// the length's digits and a space.
func HeaderSize(typeLen int, length int64) int64 {
	n := int64(typeLen) + 3
	for ; length >= 10; length /= 10 {
		n++
	}
	return n
}

// Reader decodes frames from a byte stream. It is incremental: a frame may
// arrive split over many reads, or many frames in one read. A Reader is
// not safe for concurrent use.
type Reader struct {
	br        *inBuffer
	remaining int64 // payload bytes of the current frame not yet read
}

// NewReader returns a Reader that reads frames from r with a 64 KiB buffer.
func NewReader(r io.Reader) *Reader {
	return NewReaderSize(r, 64<<10)
}

// NewReaderSize returns a Reader that reads frames from r with a buffer of
// at least size bytes. Payload reads larger than the buffer bypass it.
func NewReaderSize(r io.Reader, size int) *Reader {
	return &Reader{br: &inBuffer{rd: r, size: max(size, 16)}}
}

// NewPooledReader returns a Reader whose buffer of size bytes comes from a
// pool shared by all Readers of that size; Release hands it back while no
// input is buffered, so that a Reader waiting for input holds no buffer.
//
// Until its first Release it reads through a small buffer of its own, so
// that a burst of new connections, which each send little at first, does
// not take a pooled buffer each.
func NewPooledReader(r io.Reader, size int) *Reader {
	size = max(size, 16)
	first := min(size, 512)
	return &Reader{br: &inBuffer{rd: r, size: size, pool: poolFor(size), buf: make([]byte, first), own: true}}
}

// Release hands a pooled Reader's buffer back if no input is buffered; the
// next read takes a buffer again. It does nothing for other Readers.
func (r *Reader) Release() { r.br.release() }

// ReadHeader reads the next frame's header. Payload left unread from the
// previous frame is discarded first. It returns io.EOF only when the stream
// ends cleanly between frames, io.ErrUnexpectedEOF when it ends inside a
// header, and an error wrapping ErrMalformed when the header breaks the
// framing rules.
func (r *Reader) ReadHeader() (Header, error) {
	if err := r.Discard(); err != nil {
		return Header{}, err
	}
	var tok [maxTypeLen]byte
	n := 0
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
		if c == ' ' {
			break
		}
		if !isTypeByte(c) {
			return Header{}, fmt.Errorf("%w: byte %#x in type", ErrMalformed, c)
		}
		if n == len(tok) {
			return Header{}, fmt.Errorf("%w: type longer than %d bytes", ErrMalformed, maxTypeLen)
		}
		tok[n] = c
		n++
	}
	if n == 0 {
		return Header{}, fmt.Errorf("%w: empty type", ErrMalformed)
	}
	length, err := r.readLength()
	if err != nil {
		return Header{}, err
	}
	h := Header{Type: LookupType(tok[:n]), Length: length}
	if h.Type == Unknown {
		h.Name = string(tok[:n])
	} else {
		h.Name = h.Type.String()
	}
	r.remaining = length
	return h, nil
}

func isTypeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c == '_' || c >= '0' && c <= '9'
}

// readLength reads `<length> SP`.
func (r *Reader) readLength() (int64, error) {
	var v int64
	n := 0
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if c == ' ' {
			if n == 0 {
				return 0, fmt.Errorf("%w: empty length", ErrMalformed)
			}
			return v, nil
		}
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: byte %#x in length", ErrMalformed, c)
		}
		if n == 1 && v == 0 {
			return 0, fmt.Errorf("%w: leading zero in length", ErrMalformed)
		}
		if n == maxLengthDigits {
			return 0, fmt.Errorf("%w: length longer than %d digits", ErrMalformed, maxLengthDigits)
		}
		if v <= (math.MaxInt64-9)/10 {
			v = v*10 + int64(c-'0')
		} else {
			v = math.MaxInt64
		}
		n++
	}
}

// Remaining returns how many payload bytes of the current frame are unread.
func (r *Reader) Remaining() int64 { return r.remaining }

// Read reads payload bytes of the current frame. It returns io.EOF at the
// end of the payload and io.ErrUnexpectedEOF if the stream ends before it.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.br.Read(p)
	r.remaining -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// ReadPayload reads the rest of the current payload into buf (grown as
// needed) and returns it. The caller must have checked the length against
// its limit, since the whole payload is held in memory.
func (r *Reader) ReadPayload(buf []byte) ([]byte, error) {
	n := int(r.remaining)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

// ReadField reads the next space-terminated field of the payload, at most
// limit bytes long, and consumes the space. The returned slice is valid until
// the next call on r. A field that reaches the end of the payload without a
// space, or grows past limit, is an error wrapping ErrMalformed.
func (r *Reader) ReadField(limit int) ([]byte, error) {
	var field []byte
	for {
		if r.remaining == 0 {
			return nil, fmt.Errorf("%w: payload ends inside a field", ErrMalformed)
		}
		// Peek at what is buffered (at least one byte), within the payload.
		want := r.br.Buffered()
		if want == 0 {
			want = 1
		}
		if int64(want) > r.remaining {
			want = int(r.remaining)
		}
		buf, err := r.br.Peek(want)
		if len(buf) == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		for i, c := range buf {
			if c == ' ' {
				field = append(field, buf[:i]...)
				if len(field) > limit {
					return nil, ErrTooLong
				}
				r.discard(i + 1)
				return field, nil
			}
		}
		field = append(field, buf...)
		r.discard(len(buf))
		if len(field) > limit {
			return nil, ErrTooLong
		}
	}
}

func (r *Reader) discard(n int) {
	d, _ := r.br.Discard(n) // n bytes are buffered, so this cannot fail
	r.remaining -= int64(d)
}

// Discard skips the rest of the current payload.
func (r *Reader) Discard() error {
	for r.remaining > 0 {
		chunk := r.remaining
		if chunk > 1<<30 {
			chunk = 1 << 30
		}
		n, err := r.br.Discard(int(chunk))
		r.remaining -= int64(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// Buffered returns how many bytes are buffered but not yet decoded.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// AppendHeader appends the header of a frame of type t with a payload of
// length bytes.
func AppendHeader(dst []byte, t Type, length int64) []byte {
	dst = append(dst, t.String()...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, length, 10)
	return append(dst, ' ')
}

// AppendFrame appends a whole frame of type t whose payload is the
// concatenation of parts.
func AppendFrame(dst []byte, t Type, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = AppendHeader(dst, t, int64(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}
