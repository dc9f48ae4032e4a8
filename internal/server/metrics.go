package server

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gochat/chat/internal/protocol"
)

// metrics holds the server's Prometheus collectors. Counters indexed by
// message type or close reason are resolved once, so the hot path only
// adds to a counter.
type metrics struct {
	reg *prometheus.Registry

	framesIn  [protocol.NumTypes]prometheus.Counter
	bytesIn   [protocol.NumTypes]prometheus.Counter
	framesOut [protocol.NumTypes]prometheus.Counter
	bytesOut  [protocol.NumTypes]prometheus.Counter

	disconnects   [numReasons]prometheus.Counter
	slowConsumers prometheus.Counter
	fileBytes     prometheus.Counter
	floodDelays   prometheus.Counter
	paused        [numPauseCauses]prometheus.Counter
	pausedSeconds [numPauseCauses]prometheus.Counter
	ipRejected    prometheus.Counter
	stdoutDropped prometheus.Counter
	spoolRefused  prometheus.Counter
	spoolFailed   prometheus.Counter
	slowSenders   prometheus.Counter
	lagged        prometheus.Counter
	resumes       prometheus.Counter // session.go
	resumeMissed  prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	gauge := func(name, help string, value func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value)
	}
	// locked reads a value under the mutex its writers hold.
	locked := func(mu *sync.Mutex, value func() float64) func() float64 {
		return func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return value()
		}
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("chat_users", "Users joined now.",
			func() float64 { return float64(s.cfg.Hub.Len()) }),
		gauge("chat_connections", "TCP connections open now, joined or not.",
			locked(&s.mu, func() float64 { return float64(len(s.conns)) })),
		gauge("chat_spool_disk_bytes", "Bytes of files held on disk for recipients that take whole frames (reserved at the files' sizes).",
			locked(&s.spoolMu, func() float64 { return float64(s.spoolDisk) })),
		gauge("chat_spool_memory_bytes", "Bytes of files held in memory for recipients that take whole frames (reserved at the files' sizes).",
			locked(&s.spoolMu, func() float64 { return float64(s.spoolMem) })),
	)
	vec := func(name, help, label string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		m.reg.MustRegister(v)
		return v
	}
	framesIn := vec("chat_frames_in_total", "Frames received, by type.", "type")
	bytesIn := vec("chat_bytes_in_total", "Frame bytes received (header and payload), by type.", "type")
	framesOut := vec("chat_frames_out_total", "Frames queued for sending, by type and recipient.", "type")
	bytesOut := vec("chat_bytes_out_total", "Frame bytes queued for sending, by type and recipient.", "type")
	for t := range protocol.NumTypes {
		name := t.String()
		m.framesIn[t] = framesIn.WithLabelValues(name)
		m.bytesIn[t] = bytesIn.WithLabelValues(name)
		m.framesOut[t] = framesOut.WithLabelValues(name)
		m.bytesOut[t] = bytesOut.WithLabelValues(name)
	}
	disconnects := vec("chat_disconnects_total", "Connections closed, by reason (refused joins included).", "reason")
	for r := reasonNone + 1; r < numReasons; r++ {
		m.disconnects[r] = disconnects.WithLabelValues(r.String())
	}
	paused := vec("chat_senders_paused_total", "Times a sender's reading was paused, by cause: flood control (frames, bytes) or a recipient's backlog.", "cause")
	pausedSeconds := vec("chat_senders_paused_seconds_total", "Time senders' reading spent paused, by cause.", "cause")
	for p := range numPauseCauses {
		m.paused[p] = paused.WithLabelValues(p.String())
		m.pausedSeconds[p] = pausedSeconds.WithLabelValues(p.String())
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.slowConsumers = counter("chat_slow_consumers_total", "Connections cut off for not reading.")
	m.fileBytes = counter("chat_file_bytes_total", "File content bytes received for relaying.")
	m.floodDelays = counter("chat_flood_delays_total", "Frames whose reading was delayed by flood control.")
	m.stdoutDropped = counter("chat_stdout_lines_dropped_total", "Event lines dropped because stdout took nothing while 64 MiB of them waited.")
	m.spoolRefused = counter("chat_spool_refused_total", "Files not held for recipients that take whole frames, or not the rest of a chunked file for a recipient that fell behind, because the spool on disk was full (--spool-max).")
	m.spoolFailed = counter("chat_spool_failures_total", "Files not held for recipients that take whole frames, or not the rest of a chunked file for a recipient that fell behind, because the spool could not be made, written or read.")
	m.lagged = counter("chat_file_recipients_lagged_total", "Times a chunked file's recipient fell a window behind its sender, and the server held the file's next bytes for it so that the sender went on.")
	m.slowSenders = counter("chat_slow_file_senders_total", "Files cut off because their sender stayed below --min-upload-rate.")
	m.ipRejected = counter("chat_conns_rejected_per_ip_total", "Connections refused by the per-address limit.")
	m.resumes = counter("chat_resumes_total", "Sessions taken over by a resume (the resume extension).")
	m.resumeMissed = counter("chat_resume_missed_frames_total", "Frames a resume could not replay: dropped past --resume-buffer while the session was away.")
	return m
}

// Registry returns the Prometheus registry holding the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }
