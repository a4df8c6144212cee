// TLS for the server and the scripted client (all off unless asked for, so every other scenario
// runs in the clear as before), and the tls scenario (tlsScenario in node-echo/echo.js): 30 calls
// of the four kinds over Echo, made on one connection, or with --tls-resume on two connections
// one after the other that share one tls.ClientSessionCache, so the second resumes the first's
// session (a TLS 1.3 PSK, a TLS 1.2 session ticket).
//
//	go-echo server --addr A --tls-cert F --tls-key F [--tls-curves p256]
//	go-echo client --target A --scenario tls --log F --tls-ca F [--tls-keylog F] [--tls-max 1.2]
//	    [--tls-suite TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256] [--tls-resume]

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	pb "goecho/pb"
)

// tlsFlags: the TLS command-line options (empty: plaintext, as before).
type tlsFlags struct {
	cert, key, curves      string // server
	ca, keylog, max, suite string // client
	resume                 bool
	keylogFile             *os.File
	sessions               tls.ClientSessionCache
}

var tlsOpt tlsFlags

// serverTLS: the server's tls.Config, nil without --tls-cert.
func serverTLS() *tls.Config {
	if tlsOpt.cert == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(tlsOpt.cert, tlsOpt.key)
	if err != nil {
		panic(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch tlsOpt.curves {
	case "":
	case "p256": // a Go client sends only an X25519 key share: TLS 1.3 answers HelloRetryRequest
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	default:
		panic("unknown --tls-curves " + tlsOpt.curves)
	}
	return cfg
}

// clientTLS: the client's tls.Config, nil without --tls-ca. Every connection of the process
// shares the key log file and the session cache.
func clientTLS() *tls.Config {
	if tlsOpt.ca == "" {
		return nil
	}
	pem, err := os.ReadFile(tlsOpt.ca)
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		panic("no certificate in " + tlsOpt.ca)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if tlsOpt.keylog != "" {
		if tlsOpt.keylogFile == nil {
			f, err := os.OpenFile(tlsOpt.keylog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				panic(err)
			}
			tlsOpt.keylogFile = f
		}
		cfg.KeyLogWriter = tlsOpt.keylogFile
	}
	switch tlsOpt.max {
	case "":
	case "1.2":
		cfg.MaxVersion = tls.VersionTLS12
	case "1.3":
		cfg.MaxVersion = tls.VersionTLS13
	default:
		panic("unknown --tls-max " + tlsOpt.max)
	}
	if tlsOpt.suite != "" { // TLS 1.2 suites only: Go has no setting for TLS 1.3's
		var id uint16
		for _, s := range tls.CipherSuites() {
			if s.Name == tlsOpt.suite {
				id = s.ID
			}
		}
		if id == 0 {
			panic("unknown --tls-suite " + tlsOpt.suite)
		}
		cfg.CipherSuites = []uint16{id}
	}
	if tlsOpt.resume {
		if tlsOpt.sessions == nil {
			tlsOpt.sessions = tls.NewLRUClientSessionCache(8)
		}
		cfg.ClientSessionCache = tlsOpt.sessions
	}
	return cfg
}

// tlsPlan is call i (0..29) of the tls scenario; tlsPlan in node-echo/echo.js is the same.
// Calls 20..23 run at once.
func tlsPlan(i int) spec {
	E := func(m string) *pb.EchoRequest { return &pb.EchoRequest{Message: m} }
	errU := func(code int32, msg string) spec {
		e := E(fmt.Sprintf("e%d", i))
		e.StatusCode, e.StatusMessage = code, msg
		return spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{e}}
	}
	many := func(n int, f func(j int) *pb.EchoRequest) []*pb.EchoRequest {
		var out []*pb.EchoRequest
		for j := 0; j < n; j++ {
			out = append(out, f(j))
		}
		return out
	}
	var s spec
	switch i {
	case 0, 1, 2, 3, 29:
		e := E(fmt.Sprintf("u%d", i))
		e.ReplySize = map[int]int32{0: 10, 1: 100, 2: 1000, 3: 20000, 29: 10}[i]
		s = spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{e}}
	case 4:
		s = errU(5, "no such thing")
	case 5:
		s = errU(3, "bad argument")
	case 6:
		s = errU(7, "denied")
	case 7:
		s = errU(14, "try later")
	case 8:
		s = errU(8, "quota")
	case 9:
		s = errU(13, "boom")
	case 10:
		e := E("s10")
		e.ReplyCount, e.ReplySize = 5, 10
		s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}}
	case 11:
		e := E("s11")
		e.ReplyCount, e.ReplySize, e.StatusCode, e.StatusMessage = 2, 10, 14, "stream broke"
		s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}}
	case 12:
		e := E("s12")
		e.ReplyCount, e.ReplySize = 2, 17000
		s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}}
	case 13:
		s = spec{svc: "Echo", method: "ClientStream", echo: many(3, func(j int) *pb.EchoRequest { return E(fmt.Sprintf("c13-%d", j)) })}
	case 14:
		s = spec{svc: "Echo", method: "ClientStream", echo: many(3, func(j int) *pb.EchoRequest { return E(fmt.Sprintf("c14-%d", j)) })}
		s.echo[2].StatusCode, s.echo[2].StatusMessage = 3, "bad stream"
	case 15:
		s = spec{svc: "Echo", method: "ClientStream", echo: many(5, func(j int) *pb.EchoRequest {
			e := E(fmt.Sprintf("c15-%d", j))
			e.Payload = []byte(strings.Repeat("p", 1000))
			return e
		})}
	case 16:
		s = spec{svc: "Echo", method: "Bidi", echo: many(2, func(j int) *pb.EchoRequest {
			e := E(fmt.Sprintf("b16-%d", j))
			e.ReplyCount = 1
			return e
		})}
	case 17:
		s = spec{svc: "Echo", method: "Bidi", echo: many(3, func(j int) *pb.EchoRequest {
			e := E(fmt.Sprintf("b17-%d", j))
			e.ReplyCount = 2
			return e
		})}
	case 18:
		s = spec{svc: "Echo", method: "Bidi", echo: many(2, func(j int) *pb.EchoRequest {
			e := E(fmt.Sprintf("b18-%d", j))
			e.ReplyCount = 1
			return e
		})}
		s.echo[1].StatusCode, s.echo[1].StatusMessage = 9, "no bidi"
	case 19:
		e := E("late19")
		e.SleepMs = 200
		s = spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{e}, timeout: 50 * time.Millisecond}
	case 20:
		e := E("u20")
		e.SleepMs, e.ReplySize = 30, 50
		s = spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{e}}
	case 21:
		e := E("s21")
		e.ReplyCount, e.ReplySize, e.SleepMs = 4, 10, 10
		s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}}
	case 22:
		s = spec{svc: "Echo", method: "ClientStream", echo: many(2, func(j int) *pb.EchoRequest { return E(fmt.Sprintf("c22-%d", j)) })}
	case 23:
		s = spec{svc: "Echo", method: "Bidi", echo: many(2, func(j int) *pb.EchoRequest {
			e := E(fmt.Sprintf("b23-%d", j))
			e.ReplyCount = 1
			return e
		})}
	case 24:
		e := E("x24")
		e.ReplyCount, e.SleepMs = 5, 40
		s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}, cancelAfter: 70 * time.Millisecond}
	case 25:
		e := E("t25")
		e.ReplySize = 5
		s = spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{e}, timeout: 5 * time.Second}
	case 26:
		s = errU(16, "who are you")
	case 27:
		s = errU(10, "aborted")
	case 28: // no message, only trailers
		e := E("s28")
		e.StatusCode, e.StatusMessage = 5, "nothing"
		s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}}
	default:
		panic(i)
	}
	if i%3 == 0 {
		s.tag = fmt.Sprintf("tls-%02d", i)
	}
	return s
}

// tlsScenario: the 30 calls on one connection (conn 0, call ids 1..30); with --tls-resume once
// more on a second connection dialled after the first is closed (conn 1, call ids 10001..10030).
func tlsScenario(target string, log *logger) {
	conns := 1
	if tlsOpt.resume {
		conns = 2
	}
	for conn := 0; conn < conns; conn++ {
		c, cc := dial(target)
		for i := 0; i < 30; {
			if i == 20 {
				var wg sync.WaitGroup
				for j := 20; j < 24; j++ {
					wg.Add(1)
					go func(j int) { defer wg.Done(); run(c, log, conn, tlsPlan(j), conn*10000+j+1, "") }(j)
				}
				wg.Wait()
				i = 24
				continue
			}
			run(c, log, conn, tlsPlan(i), conn*10000+i+1, "")
			i++
		}
		time.Sleep(300 * time.Millisecond) // the last reset reaches the wire before the connection closes
		cc.Close()
		time.Sleep(200 * time.Millisecond)
	}
}
