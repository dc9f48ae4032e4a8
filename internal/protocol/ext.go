package protocol

import (
	"bytes"
	"fmt"
	"strconv"
)

// FeatureChunkedFile is the extension feature under which the server
// delivers large files as file_begin, file_chunk... and file_end (or
// file_abort) frames that other frames may come between.
const FeatureChunkedFile = "chunked-file"

const (
	// MaxExtHello is the largest ext_hello payload.
	MaxExtHello = 256
	// MaxChunkData is the most file bytes one file_chunk carries.
	MaxChunkData = 64 << 10
	// maxIDDigits is the most digits of a transfer id.
	maxIDDigits = 19
)

// ParseFeatures decodes an ext_hello payload: feature names separated by
// single spaces, each 1 to 32 bytes of a-z, 0-9, '-', '.' and '/'.
func ParseFeatures(p []byte) ([]string, error) {
	if len(p) == 0 {
		return nil, nil
	}
	var features []string
	for f := range bytes.SplitSeq(p, []byte{' '}) {
		if len(f) == 0 || len(f) > 32 {
			return nil, fmt.Errorf("%w: feature %q", ErrMalformed, f)
		}
		for _, c := range f {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '/') {
				return nil, fmt.Errorf("%w: feature %q", ErrMalformed, f)
			}
		}
		features = append(features, string(f))
	}
	return features, nil
}

// AppendExtHello appends an ext_hello frame listing features.
func AppendExtHello(dst []byte, features []string) []byte {
	n := 0
	for i, f := range features {
		if i > 0 {
			n++
		}
		n += len(f)
	}
	dst = AppendHeader(dst, ExtHello, int64(n))
	for i, f := range features {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, f...)
	}
	return dst
}

// AppendFileBegin appends a file_begin frame: `<id> <sender> <filename> <size>`.
func AppendFileBegin(dst []byte, id uint64, sender, filename string, size int64) []byte {
	var num [40]byte
	ids := strconv.AppendUint(num[:0], id, 10)
	sz := strconv.AppendInt(num[len(ids):len(ids)], size, 10)
	dst = AppendHeader(dst, FileBegin, int64(len(ids)+1+len(sender)+1+len(filename)+1+len(sz)))
	dst = append(dst, ids...)
	dst = append(dst, ' ')
	dst = append(dst, sender...)
	dst = append(dst, ' ')
	dst = append(dst, filename...)
	dst = append(dst, ' ')
	return append(dst, sz...)
}

// ParseFileBegin decodes a file_begin payload.
func ParseFileBegin(p []byte) (id uint64, sender, filename string, size int64, err error) {
	f := bytes.Split(p, []byte{' '})
	if len(f) != 4 {
		return 0, "", "", 0, fmt.Errorf("%w: file_begin has %d fields", ErrMalformed, len(f))
	}
	if id, err = parseID(f[0]); err != nil {
		return 0, "", "", 0, err
	}
	sender, filename = string(f[1]), string(f[2])
	if err := ValidUsername(sender); err != nil {
		return 0, "", "", 0, err
	}
	if err := ValidFilename(filename); err != nil {
		return 0, "", "", 0, err
	}
	if size, err = parseSize(f[3]); err != nil {
		return 0, "", "", 0, err
	}
	return id, sender, filename, size, nil
}

// ChunkHeader appends the header and id of a file_chunk frame carrying
// n bytes of data, which the caller appends next.
func ChunkHeader(dst []byte, id uint64, n int) []byte {
	var num [20]byte
	ids := strconv.AppendUint(num[:0], id, 10)
	dst = AppendHeader(dst, FileChunk, int64(len(ids)+1+n))
	dst = append(dst, ids...)
	return append(dst, ' ')
}

// ParseChunk decodes a file_chunk payload into its id and data.
func ParseChunk(p []byte) (id uint64, data []byte, err error) {
	field, data, ok := cutField(p)
	if !ok {
		return 0, nil, fmt.Errorf("%w: file_chunk without data", ErrMalformed)
	}
	id, err = parseID(field)
	return id, data, err
}

// AppendFileID appends a file_end or file_abort frame (t) for id. Its
// payload is the decimal id alone, encoded as a count's is.
func AppendFileID(dst []byte, t Type, id uint64) []byte { return AppendCount(dst, t, id) }

// ParseFileID decodes a file_end or file_abort payload.
func ParseFileID(p []byte) (uint64, error) { return parseID(p) }

func parseID(f []byte) (uint64, error) {
	if len(f) == 0 || len(f) > maxIDDigits || len(f) > 1 && f[0] == '0' {
		return 0, fmt.Errorf("%w: id %q", ErrMalformed, f)
	}
	var v uint64
	for _, c := range f {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: id %q", ErrMalformed, f)
		}
		v = v*10 + uint64(c-'0')
	}
	return v, nil
}
