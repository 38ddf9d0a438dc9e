package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// lookupFunc resolves a host name (net.DefaultResolver.LookupIPAddr in the
// tool, a fake in tests).
type lookupFunc func(ctx context.Context, host string) ([]net.IPAddr, error)

// loopbackIP returns a loopback address for host, refusing anything that is
// not (or may resolve to something that is not) on this machine: every
// address host resolves to must be in 127.0.0.0/8 or be ::1.
func loopbackIP(ctx context.Context, host string, lookup lookupFunc) (net.IP, error) {
	if host == "" {
		return nil, fmt.Errorf("empty host")
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("refusing non-loopback target %s: wsbench only generates load against 127.0.0.0/8 or ::1", host)
		}
		return ip, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	var first net.IP
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("refusing non-loopback target %s (resolves to %s): wsbench only generates load against 127.0.0.0/8 or ::1", host, a.IP)
		}
		if first == nil || (first.To4() == nil && a.IP.To4() != nil) {
			first = a.IP // prefer IPv4
		}
	}
	return first, nil
}

// normalizeTarget turns "127.0.0.1:7800", "localhost:7800" or
// "http://127.0.0.1:7800/" into "http://IP:PORT" with a loopback IP literal.
// ws:// and wss:// are accepted as spellings of http:// and https://.
func normalizeTarget(ctx context.Context, raw string, lookup lookupFunc) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", fmt.Errorf("empty -url entry")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad -url %q: %v", raw, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("bad -url %q: scheme must be http or ws", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("bad -url %q: give the server's base URL (scheme://host:port), not a path", raw)
	}
	ip, err := loopbackIP(ctx, u.Hostname(), lookup)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(ip.String(), port), nil
}

// parseSrc parses the -src list of local source addresses: a comma list of
// addresses and ranges ("127.0.0.2-127.0.0.9", or "127.0.0.2-9"). Every
// address must be a loopback address; at most 256 in all.
func parseSrc(spec string) ([]net.IP, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var out []net.IP
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(from))
		if a == nil {
			return nil, fmt.Errorf("-src: bad address %q", from)
		}
		if !isRange {
			if !a.IsLoopback() {
				return nil, fmt.Errorf("-src: %s is not a loopback address", a)
			}
			out = append(out, a)
			continue
		}
		a4 := a.To4()
		if a4 == nil {
			return nil, fmt.Errorf("-src: ranges are IPv4 only (%q)", part)
		}
		to = strings.TrimSpace(to)
		b := net.ParseIP(to)
		if b == nil && !strings.Contains(to, ".") {
			// short form: 127.0.0.2-9
			i := strings.LastIndexByte(from, '.')
			b = net.ParseIP(strings.TrimSpace(from[:i+1]) + to)
		}
		if b == nil || b.To4() == nil {
			return nil, fmt.Errorf("-src: bad range end %q", to)
		}
		lo, hi := binary.BigEndian.Uint32(a4), binary.BigEndian.Uint32(b.To4())
		if hi < lo {
			return nil, fmt.Errorf("-src: empty range %q", part)
		}
		if hi-lo >= 256 {
			return nil, fmt.Errorf("-src: range %q is larger than 256 addresses", part)
		}
		for v := lo; v <= hi; v++ {
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, v)
			if !ip.IsLoopback() {
				return nil, fmt.Errorf("-src: %s is not a loopback address", ip)
			}
			out = append(out, ip)
		}
	}
	if len(out) > 256 {
		return nil, fmt.Errorf("-src: more than 256 addresses")
	}
	return out, nil
}
