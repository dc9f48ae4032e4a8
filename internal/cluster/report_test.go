package cluster

import (
	"slices"
	"testing"
)

// reportEntry is one entry of a report, as eachEntry reads it.
type reportEntry struct {
	key  creditKey
	vals []uint64
}

// readEntries returns the entries of a report's body.
func readEntries(body []byte, nv int) []reportEntry {
	var got []reportEntry
	eachEntry(body, nv, func(key creditKey, vals []uint64) {
		got = append(got, reportEntry{key, slices.Clone(vals)})
	})
	return got
}

// TestReportEntries: what report.add writes, eachEntry reads back, in
// order, for each count of numbers the reports use; a body cut short
// yields the entries before the cut only.
func TestReportEntries(t *testing.T) {
	for _, nv := range []int{1, 2, 3} {
		want := []reportEntry{
			{creditKey{"bob", 7}, []uint64{1, 2, 3}[:nv]},
			{creditKey{"a", 1 << 63}, []uint64{0, 1 << 40, 9}[:nv]},
			{creditKey{"carol", 0}, []uint64{42, 43, 44}[:nv]},
		}
		r := &report{}
		for _, e := range want {
			r.add(e.key, e.vals...)
		}
		if got := readEntries(r.b, nv); !slices.EqualFunc(got, want, entryEqual) {
			t.Errorf("%d numbers: read %v, want %v", nv, got, want)
		}
		if got := readEntries(r.b[:len(r.b)-1], nv); !slices.EqualFunc(got, want[:2], entryEqual) {
			t.Errorf("%d numbers, cut short: read %v, want the first two", nv, got)
		}
	}
	if got := readEntries([]byte{0, 1, 2}, 1); got != nil {
		t.Errorf("an entry with an empty name: read %v, want nothing", got)
	}
}

func entryEqual(a, b reportEntry) bool { return a.key == b.key && slices.Equal(a.vals, b.vals) }

// FuzzEachEntry: eachEntry never reads past the body, and what it reads
// written again by report.add is the body's start.
func FuzzEachEntry(f *testing.F) {
	r := &report{}
	r.add(creditKey{"bob", 7}, 1, 2)
	f.Add(r.b, 2)
	f.Add([]byte{3, 'b', 'o', 'b'}, 1)
	f.Fuzz(func(t *testing.T, body []byte, nv int) {
		nv = 1 + (nv&3)%3
		w := &report{}
		for _, e := range readEntries(body, nv) {
			w.add(e.key, e.vals...)
		}
		if !slices.Equal(w.b, body[:len(w.b)]) {
			t.Fatalf("read and written again: %x, not the start of %x", w.b, body)
		}
	})
}
