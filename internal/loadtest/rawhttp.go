package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// The generator shares the machine with the target, so every microsecond
// it spends per request is taken from the server it measures. Go's
// net/http client hands each request to two goroutines of the connection
// (a writer and a reader) and back, through channels and timers, and
// parses every header into a map: on catalog-100vu that machinery, not the
// system calls, was most of the generator's CPU (pprof: readLoop,
// writeLoop, selectgo, findRunnable, readMIMEHeader). A VU's requests
// therefore go over a connection of its own, written and read in the VU's
// goroutine: one write and one or two reads per request, no goroutine
// switch, no allocation beyond the body it keeps. https targets and odd
// paths or header values keep using net/http.

// rawConn is one VU's keep-alive HTTP/1.1 connection.
type rawConn struct {
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte // the request being sent, reused
	// watched is the context bound to the connection: cancelling it
	// moves the connection's deadline to the past, which ends a blocked
	// read or write at once (the hard stop of a run).
	watched context.Context
	stop    func() bool
	// served counts the answers read: only a connection that served one
	// may have been closed by the server while idle.
	served int
	// used is when the last answer was read.
	used time.Time
}

// rawStaleAfter is how long a connection may sit idle before a request
// that cannot be sent twice (resendable) takes a new one instead: servers
// close idle keep-alive connections (pos after 120 s), and such a request
// meeting a closed one would fail rather than be sent again.
const rawStaleAfter = 30 * time.Second

// rawTarget is where the raw path connects and what it writes, taken
// from the target URL once; nil when the target is not plain http.
type rawTarget struct {
	addr   string // host:port to dial
	host   string // the Host header
	prefix string // the target URL's path, before /api/v1
}

func newRawTarget(base string) *rawTarget {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if !headerSafe(u.Host) || !pathSafe(u.EscapedPath()) {
		return nil
	}
	return &rawTarget{addr: addr, host: u.Host, prefix: u.EscapedPath()}
}

// rawEligible tells whether k may take the raw path: a call whose method,
// path and header values need no escaping or checking (they are the
// generator's own, but a value with a line break must never be written as
// is).
func rawEligible(k call) bool {
	_, known := rawMethods[k.op.Method]
	return known && pathSafe(k.path) &&
		headerSafe(k.apiKey) && headerSafe(k.bearer) && headerSafe(k.idem)
}

// rawMethods are the methods the raw path writes; the value tells those
// that send a Content-Length even without a body, as net/http does.
var rawMethods = map[string]bool{"GET": false, "DELETE": false, "POST": true, "PUT": true, "PATCH": true}

// resendable tells a request that may be sent again after the server
// closed its idle connection: net/http's rule, idempotent methods and
// requests carrying an Idempotency-Key. Another POST is not repeated,
// though a server that closed the connection while idle has most likely
// not seen it: the ledger of the run must never miss a cart line the
// target added twice.
func resendable(k call) bool {
	return k.op.Method == "GET" || k.op.Method == "DELETE" || k.op.Method == "PUT" || k.idem != ""
}

// pathSafe accepts visible ASCII only: what http.NewRequest would send
// unchanged.
func pathSafe(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f || p[i] == '#' {
			return false
		}
	}
	return true
}

// headerSafe refuses control characters, which would end the header
// line early.
func headerSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] == 0x7f {
			return false
		}
	}
	return true
}

// aLongTimeAgo is a deadline in the past: it fails pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// maxRawHeaderLine bounds one line of an answer's head (net/http's limit
// for a whole head is far larger, but no line of this API's answers
// comes near it).
const maxRawHeaderLine = 16 << 10

// appendRawRequest writes the request of k with its JSON body: the
// headers net/http would send for it, but a User-Agent naming the
// generator.
func (t *rawTarget) appendRawRequest(b []byte, k call, body []byte) []byte {
	b = append(b, k.op.Method...)
	b = append(b, ' ')
	b = append(b, t.prefix...)
	if !isHealthPath(k.path) {
		b = append(b, apiPrefix...)
	}
	b = append(b, k.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\nUser-Agent: pos-loadtest\r\nAccept: application/json\r\n"...)
	if k.apiKey != "" {
		b = append(b, "X-API-Key: "...)
		b = append(b, k.apiKey...)
		b = append(b, "\r\n"...)
	}
	if k.bearer != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, k.bearer...)
		b = append(b, "\r\n"...)
	}
	if k.idem != "" {
		b = append(b, "Idempotency-Key: "...)
		b = append(b, k.idem...)
		b = append(b, "\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\n"...)
	}
	if body != nil || rawMethods[k.op.Method] {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// errServerClosed is an idle keep-alive connection the server closed
// before the request reached it: a request that may be repeated
// (resendable) is sent again on a new one.
var errServerClosed = errors.New("server closed the idle connection")

// exchangeRaw sends k, with body, on the VU's connection *slot (dialling
// one when there is none) and reads the answer, keeping what k.keep asks
// of its body. A connection that failed is closed and forgotten; a
// request that met a connection the server had closed while idle is sent
// once more on a new one when it may be (resendable), as net/http does.
func (c *client) exchangeRaw(ctx context.Context, k call, body []byte, slot **rawConn) exchange {
	ex := exchange{start: time.Now()}
	for attempt := 0; ; attempt++ {
		rc := *slot
		if rc != nil && !resendable(k) && time.Since(rc.used) > rawStaleAfter {
			c.dropRaw(slot)
			rc = nil
		}
		if rc != nil && !rc.arm(ctx, c.timeout) {
			c.dropRaw(slot)
			rc = nil
		}
		if rc == nil {
			var err error
			if rc, err = c.dialRaw(ctx); err != nil {
				ex.err, ex.end = err, time.Now()
				return ex
			}
			*slot = rc
			rc.arm(ctx, c.timeout)
		}
		reused := rc.served > 0
		rc.wbuf = c.raw.appendRawRequest(rc.wbuf[:0], k, body)
		status, body, keepAlive, err := rc.roundTrip(rc.wbuf, k)
		if err == nil {
			rc.served++
			rc.used = time.Now()
			if !keepAlive {
				c.dropRaw(slot)
			}
			ex.status, ex.body, ex.end = status, body, time.Now()
			return ex
		}
		c.dropRaw(slot)
		if errors.Is(err, errServerClosed) && reused && attempt == 0 && ctx.Err() == nil && resendable(k) {
			continue
		}
		ex.status, ex.err, ex.end = status, err, time.Now()
		return ex
	}
}

// arm sets the request's deadline and binds the connection to ctx. It
// reports false for a connection bound to a context that ended (a VU
// borrowed after the hard stop): that context's cancellation may move
// the deadline to the past at any moment, so the connection is not used.
func (rc *rawConn) arm(ctx context.Context, timeout time.Duration) bool {
	if rc.watched != ctx {
		if rc.stop != nil && !rc.stop() {
			return false
		}
		nc := rc.nc
		rc.watched = ctx
		rc.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	}
	_ = rc.nc.SetDeadline(time.Now().Add(timeout))
	if ctx.Err() != nil {
		// Cancelled before the deadline above was set, which may have
		// undone the cancellation's.
		_ = rc.nc.SetDeadline(aLongTimeAgo)
	}
	return true
}

// dialRaw opens a connection to the target and remembers it, so that
// closing the client closes it.
func (c *client) dialRaw(ctx context.Context) (*rawConn, error) {
	nc, err := c.dialer.DialContext(ctx, "tcp", c.raw.addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{nc: nc, br: bufio.NewReaderSize(nc, maxRawHeaderLine)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = nc.Close()
		return nil, net.ErrClosed
	}
	c.conns[rc] = struct{}{}
	return rc, nil
}

// dropRaw closes the connection in *slot and forgets it.
func (c *client) dropRaw(slot **rawConn) {
	rc := *slot
	if rc == nil {
		return
	}
	*slot = nil
	if rc.stop != nil {
		rc.stop()
	}
	_ = rc.nc.Close()
	c.mu.Lock()
	delete(c.conns, rc)
	c.mu.Unlock()
}

// roundTrip writes req and reads the answer: its status, the part of its
// body k keeps, and whether the connection may serve another request. An
// error before the first byte of the answer on a connection the server
// closed is errServerClosed.
func (rc *rawConn) roundTrip(req []byte, k call) (status int, body []byte, keepAlive bool, err error) {
	if rc.br.Buffered() > 0 {
		// Bytes nobody asked for: the connection is out of step.
		return 0, nil, false, errors.New("unexpected bytes on an idle connection")
	}
	if _, err := rc.nc.Write(req); err != nil {
		if isClosedByPeer(err) {
			return 0, nil, false, fmt.Errorf("%w: %w", errServerClosed, err)
		}
		return 0, nil, false, err
	}
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			if len(line) == 0 && isClosedByPeer(err) {
				return 0, nil, false, fmt.Errorf("%w: %w", errServerClosed, err)
			}
			return 0, nil, false, headErr(err)
		}
		status, http10, ok := parseStatusLine(line)
		if !ok {
			return 0, nil, false, fmt.Errorf("malformed HTTP status line %q", truncate(string(bytes.TrimSpace(line)), 60))
		}
		h, err := rc.readHead()
		if err != nil {
			return status, nil, false, err
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // an informational answer; the real one follows
		}
		keepAlive = !h.close && (!http10 || h.keepAlive)
		body, err = rc.readBody(status, h, k.keep(status))
		if h.length < 0 && !h.chunked && !bodiless(status) {
			keepAlive = false // the body ended with the connection
		}
		return status, body, keepAlive, err
	}
}

// head is what the raw path reads of an answer's header fields.
type head struct {
	length           int64 // Content-Length, -1 when absent
	chunked          bool
	close, keepAlive bool // Connection: close / keep-alive
}

// readHead reads header lines up to the blank line.
func (rc *rawConn) readHead() (head, error) {
	h := head{length: -1}
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			return h, headErr(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return h, fmt.Errorf("malformed HTTP header line %q", truncate(string(line), 60))
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (h.length >= 0 && n != h.length) {
				return h, fmt.Errorf("bad Content-Length %q", value)
			}
			h.length = n
		case asciiEqualFold(name, "transfer-encoding"):
			h.chunked = hasToken(value, "chunked")
		case asciiEqualFold(name, "connection"):
			h.close = h.close || hasToken(value, "close")
			h.keepAlive = h.keepAlive || hasToken(value, "keep-alive")
		}
	}
}

// bodiless tells the statuses whose answers never have a body, however
// their head is framed (RFC 9112, section 6.3).
func bodiless(status int) bool { return status == 204 || status == 304 }

// readBody reads the body of an answer with head h, keeping up to keep
// bytes of it (-1: all of it) and discarding the rest.
func (rc *rawConn) readBody(status int, h head, keep int) ([]byte, error) {
	if bodiless(status) {
		return nil, nil
	}
	var sink bodySink
	sink.keep = keep
	switch {
	case h.chunked:
		for {
			line, err := rc.br.ReadSlice('\n')
			if err != nil {
				return sink.b, headErr(err)
			}
			sizeText, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte{';'})
			size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
			if err != nil || size < 0 {
				return sink.b, fmt.Errorf("malformed chunk size %q", truncate(string(line), 40))
			}
			if size == 0 {
				_, err := rc.readHead() // trailers, up to the blank line
				return sink.b, err
			}
			if err := sink.copy(rc.br, size); err != nil {
				return sink.b, err
			}
			if crlf, err := rc.br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
				return sink.b, errors.New("malformed chunk end")
			}
		}
	case h.length >= 0:
		return sink.b, sink.copy(rc.br, h.length)
	default:
		// Neither length nor chunks: the body ends with the connection.
		err := sink.copy(rc.br, -1)
		return sink.b, err
	}
}

// bodySink keeps the first keep bytes of a body (-1: all of them).
type bodySink struct {
	keep int
	b    []byte
}

// copy moves n bytes of r (-1: up to EOF) into the sink.
func (s *bodySink) copy(r *bufio.Reader, n int64) error {
	for n != 0 {
		chunk, err := r.Peek(1)
		if err != nil {
			if n < 0 && err == io.EOF {
				return nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		chunk, _ = r.Peek(r.Buffered())
		if n > 0 && int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if room := s.room(); room > 0 {
			s.b = append(s.b, chunk[:min(room, len(chunk))]...)
		}
		_, _ = r.Discard(len(chunk))
		if n > 0 {
			n -= int64(len(chunk))
		}
	}
	return nil
}

func (s *bodySink) room() int {
	if s.keep < 0 {
		return int(^uint(0) >> 1)
	}
	return s.keep - len(s.b)
}

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status int, http10, ok bool) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, false
		}
		status = status*10 + int(d-'0')
	}
	if len(line) > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n' {
		return 0, false, false
	}
	return status, line[7] == '0', true
}

// headErr makes a failure while reading an answer's head readable.
func headErr(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return errors.New("an answer's header line is too long")
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isClosedByPeer tells a connection the server closed (EOF, reset, broken
// pipe) from other failures, timeouts above all, which are never retried.
func isClosedByPeer(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// hasToken tells whether a comma-separated header value names token.
func hasToken(value []byte, token string) bool {
	for len(value) > 0 {
		var part []byte
		part, value, _ = bytes.Cut(value, []byte{','})
		if asciiEqualFold(bytes.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// asciiEqualFold compares b with lower-case ASCII s, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
