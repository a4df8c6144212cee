// go-echo server --h2c: the same grpc-go server (newServer) behind net/http and
// golang.org/x/net/http2/h2c (Debian's golang-golang-x-net-dev), cleartext only. h2c.NewHandler
// takes both ways into HTTP/2 of RFC 7540: prior knowledge (section 3.4) and the HTTP/1.1
// "Upgrade: h2c" + "HTTP2-Settings" request (section 3.2), which it answers "101 Switching
// Protocols" before serving the connection as HTTP/2, the upgrading request becoming stream 1.
// Requests whose content-type starts with application/grpc go to grpc-go's ServeHTTP
// (handler_server.go), anything else (a plain GET) gets 200 and a line of text.
package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func serveH2C(addr string) {
	if serverTLS() != nil {
		panic("--h2c is cleartext: no --tls-cert")
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	g := newServer()
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "go-echo h2c: %s %s (%s)\n", r.Method, r.URL.Path, r.Proto)
			return
		}
		// The request that asked for the upgrade is answered on HTTP/2 stream 1, but http2's
		// ServeConn hands it on as net/http parsed it: "HTTP/1.1", with its hop-by-hop upgrade
		// headers. grpc-go refuses a request whose ProtoMajor is not 2, so such a request (an
		// HTTP/1 request on a response writer that is not net/http's, which can be hijacked)
		// is marked as the HTTP/2 request it has become.
		if _, h1 := w.(http.Hijacker); r.ProtoMajor == 1 && !h1 {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
			for _, h := range []string{"Connection", "Upgrade", "Http2-Settings"} {
				r.Header.Del(h)
			}
		}
		g.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h2c.NewHandler(mux, &http2.Server{})}
	fmt.Println("ready")
	if err := srv.Serve(lis); err != nil {
		panic(err)
	}
}
