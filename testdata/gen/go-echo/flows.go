// The flow scenarios of make_flow_captures.sh, and the relay server of the nested one. These
// commands are taken by flowsMain (run from init, before main) and main.go never sees them, so
// every other command and flag of go-echo is as it was:
//
//	go-echo server --addr A --max-streams N        grpc.MaxConcurrentStreams(N): SETTINGS_MAX_CONCURRENT_STREAMS (no other flags)
//	go-echo relay --addr A --upstream B --children children.jsonl
//	go-echo client --target A --scenario slow-consumer --log F --messages M
//	go-echo client --target A --scenario unbounded-window --log F [--window N]
//	go-echo client --target A --scenario max-streams --log F
//	go-echo client --target A [--target2 B] --scenario leaks --log F --marker M
//	go-echo client --target A --scenario nested --log F
//
// slow-consumer: a ServerStream of 50 replies of 24 KiB that the client reads one every 200 ms,
// on a connection dialled with 65535-byte stream and connection windows (which also turn BDP
// estimation off): the server spends the call at a zero stream window. Every message's size and
// the time Recv returned it go to M. Unary calls once a second on the same connection meanwhile.
//
// unbounded-window: the opposite of slow-consumer. The connection is dialled with N-byte stream
// and connection windows (--window, default 1 GiB: SETTINGS_INITIAL_WINDOW_SIZE N and a
// connection WINDOW_UPDATE of N - 65535 at the start; grpc-go returns credit only once a quarter
// of a window is unacknowledged, more than the call carries, so it sends no WINDOW_UPDATE after
// those); a ServerStream of 50 replies of 64 KiB read one every 50 ms: the server sends them
// all at once and never waits for credit. Every row has window: the windows the client
// configured; the ServerStream's also resp_wire_bytes (its messages with their 5-byte
// prefixes) and first_msg, last_msg (when Recv returned the first and the last). A Unary
// before and after on the same connection.
//
// max-streams: against a server announcing MAX_CONCURRENT_STREAMS 2, three waves of 20 Unary
// calls (each sleeping 200 ms in the server) issued at once on one connection: the client
// queues them. A call's start is when the application issued it.
//
// leaks: streams opened and never closed (Bidi, Store.Watch, ServerStream, ClientStream, a
// message or two each), kept open until the process is released (MARKER appears, after the
// capture stopped), while unary and short streaming calls go on: Echo.Unary always with a
// deadline, Store.Get never; a few Echo.Unary past their 100 ms deadline (the server sleeps
// 300 ms). --target2 (the python server) gets only the late calls and a few on time ones. The
// open streams are logged "OPEN" when the process is released, with end null.
//
// nested: calls to the relay with a 1 s deadline and a W3C traceparent; the relay calls its
// upstream (another go-echo server) with the same trace id and a new span id, and with the
// deadline dropped (mode drop: no grpc-timeout, not cancelled with its parent), longer (long:
// 10 s from now, not cancelled with its parent) or the remaining budget (budget: the incoming
// context, as grpc-go propagates it). The mode is the second word of the request's message
// ("nested-drop-3"). The relay logs each outgoing call to --children.

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "goecho/pb"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func init() { flowsMain() }

// flowsMain runs the commands above and exits; it returns for any other.
func flowsMain() {
	if len(os.Args) < 2 {
		return
	}
	cmd, args := os.Args[1], os.Args[2:]
	has := func(flag string) bool {
		for _, a := range args {
			if a == flag || strings.HasPrefix(a, flag+"=") {
				return true
			}
		}
		return false
	}
	scenario := ""
	for i, a := range args {
		if a == "--scenario" && i+1 < len(args) {
			scenario = args[i+1]
		} else if strings.HasPrefix(a, "--scenario=") {
			scenario = strings.TrimPrefix(a, "--scenario=")
		}
	}
	flows := map[string]bool{"slow-consumer": true, "unbounded-window": true, "max-streams": true, "leaks": true, "nested": true}
	if !(cmd == "relay" || cmd == "server" && has("--max-streams") || cmd == "client" && flows[scenario]) {
		return
	}
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:50200", "server, relay: address to listen on")
	maxStreams := fs.Uint("max-streams", 0, "server: SETTINGS_MAX_CONCURRENT_STREAMS")
	up := fs.String("upstream", "", "relay: the server it calls")
	children := fs.String("children", "", "relay: the log of its outgoing calls")
	target := fs.String("target", "", "client: server to call")
	target2 := fs.String("target2", "", "client, leaks: a second server (the python one)")
	fs.String("scenario", "", "client: slow-consumer, unbounded-window, max-streams, leaks or nested")
	logPath := fs.String("log", "", "client: calls.jsonl to write")
	marker := fs.String("marker", "", "leaks: writes MARKER.ready when only the open streams are left, waits for MARKER")
	messages := fs.String("messages", "", "slow-consumer: the per-message log to write")
	window := fs.Int("window", 1<<30, "unbounded-window: the stream and connection windows to dial with")
	fs.Parse(args)
	switch cmd {
	case "relay":
		serveRelay(*addr, *up, *children)
	case "server":
		lis, err := net.Listen("tcp", *addr)
		if err != nil {
			panic(err)
		}
		s := newServer(grpc.MaxConcurrentStreams(uint32(*maxStreams)))
		fmt.Println("ready")
		if err := s.Serve(lis); err != nil {
			panic(err)
		}
	case "client":
		f, err := os.Create(*logPath)
		if err != nil {
			panic(err)
		}
		log := &logger{f: f}
		switch scenario {
		case "slow-consumer":
			slowConsumer(*target, log, *messages)
		case "unbounded-window":
			unboundedWindow(*target, log, int32(*window))
		case "max-streams":
			maxStreamsScenario(*target, log)
		case "leaks":
			leaks(*target, *target2, log, *marker)
		case "nested":
			nested(*target, log)
		}
		f.Close()
	}
	os.Exit(0)
}

func echoPath(m string) string { return "/grpctap.test.Echo/" + m }

func statusOf(err error) (string, string) {
	if err == io.EOF {
		err = nil
	}
	st := status.Convert(err)
	return codeNames[st.Code()], st.Message()
}

// ---------------------------------------------------------------- slow-consumer

func slowConsumer(target string, log *logger, messages string) {
	f, err := os.Create(messages)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ml := &logger{f: f}
	// 65535 is grpc-go's default and its lower bound; setting it (>= 65535) turns off the
	// dynamic (BDP) window, so the windows stay at 65535 for the whole connection.
	cc, err := grpc.Dial(target, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	if err != nil {
		panic(err)
	}
	defer cc.Close()
	c := client{pb.NewEchoClient(cc), pb.NewStoreClient(cc)}
	unary := func(id int, msg, phase string) {
		run(c, log, 0, spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{{Message: msg, ReplySize: 100}}}, id, phase)
	}
	unary(1, "hello", "before")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one Unary a second on the same connection while the stream is stalled
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			unary(100+i, fmt.Sprintf("ping-%d", i), "during")
		}
	}()
	const callID, count, size = 2, 50, 24576
	s := spec{svc: "Echo", method: "ServerStream"}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-call-id", strconv.Itoa(callID))
	start := now()
	st, err := c.echo.ServerStream(ctx, &pb.EchoRequest{Message: "slow-consumer", ReplyCount: count, ReplySize: size})
	n := 0
	var p interface{}
	if err == nil {
		for {
			var r *pb.EchoReply
			if r, err = st.Recv(); err != nil {
				break
			}
			// time: when Recv returned the message to the application (its bytes may have come
			// in earlier, within the 64 KiB window); size: the serialized message, wire_size
			// with gRPC's 5-byte prefix.
			sz := proto.Size(r)
			ml.write(map[string]interface{}{"call_id": callID, "method": echoPath("ServerStream"),
				"direction": "response", "index": n, "time": now(), "size": sz, "wire_size": sz + 5,
				"payload_bytes": len(r.Payload)})
			n, p = n+1, r.Peer
			time.Sleep(200 * time.Millisecond)
		}
	}
	code, msg := statusOf(err)
	logCall(log, 0, callID, s, 1, n, code, msg, p, start, "stream")
	close(stop)
	wg.Wait()
	unary(3, "bye", "after")
	time.Sleep(300 * time.Millisecond)
}

// ---------------------------------------------------------------- unbounded-window

func unboundedWindow(target string, log *logger, window int32) {
	// >= 65535: BDP estimation off, the windows stay as set.
	cc, err := grpc.Dial(target, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
	if err != nil {
		panic(err)
	}
	defer cc.Close()
	c := pb.NewEchoClient(cc)
	win := map[string]interface{}{"stream": window, "conn": window}
	row := func(id int, method string, nResp int, err error, p interface{}, start float64, phase string) map[string]interface{} {
		code, msg := statusOf(err)
		return map[string]interface{}{
			"conn": 0, "call_id": id, "method": echoPath(method), "req_msgs": 1, "resp_msgs": nResp,
			"status": code, "message": msg, "timeout_s": nil, "cancelled": false, "client_peer": p,
			"start": start, "end": now(), "phase": phase, "window": win,
		}
	}
	md := func(id int) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-call-id", strconv.Itoa(id))
	}
	unary := func(id int, msg, phase string) {
		start := now()
		r, err := c.Unary(md(id), &pb.EchoRequest{Message: msg, ReplySize: 100})
		n := 0
		var p interface{}
		if err == nil {
			n, p = 1, r.Peer
		}
		log.write(row(id, "Unary", n, err, p, start, phase))
	}
	unary(1, "hello", "before")
	const callID, count, size = 2, 50, 65536
	start := now()
	st, err := c.ServerStream(md(callID), &pb.EchoRequest{Message: "unbounded-window", ReplyCount: count, ReplySize: size})
	n, wire := 0, 0
	var p, first, last interface{}
	if err == nil {
		for {
			var r *pb.EchoReply
			if r, err = st.Recv(); err != nil {
				break
			}
			t := now()
			if first == nil {
				first = t
			}
			n, p, last, wire = n+1, r.Peer, t, wire+proto.Size(r)+5
			time.Sleep(50 * time.Millisecond)
		}
	}
	rec := row(callID, "ServerStream", n, err, p, start, "stream")
	rec["resp_wire_bytes"], rec["first_msg"], rec["last_msg"] = wire, first, last
	log.write(rec)
	unary(3, "bye", "after")
	time.Sleep(300 * time.Millisecond)
}

// ---------------------------------------------------------------- max-streams

func maxStreamsScenario(target string, log *logger) {
	c, cc := dial(target)
	defer cc.Close()
	// grpc-go reports the connection ready just before it applies the server's SETTINGS: one
	// call first, so that the waves see MAX_CONCURRENT_STREAMS.
	run(c, log, 0, spec{svc: "Echo", method: "Unary", echo: []*pb.EchoRequest{{Message: "warm-up"}}}, 1, "warmup")
	time.Sleep(300 * time.Millisecond)
	wave := func(phase string, base int, stagger, timeout time.Duration) {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for j := 0; j < 20; j++ {
			s := spec{svc: "Echo", method: "Unary", timeout: timeout,
				echo: []*pb.EchoRequest{{Message: fmt.Sprintf("%s-%d", phase, j), SleepMs: 200}}}
			wg.Add(1)
			go func(j int) {
				defer wg.Done()
				<-gate
				time.Sleep(stagger * time.Duration(j))
				run(c, log, 0, s, base+j, phase)
			}(j)
		}
		close(gate)
		wg.Wait()
	}
	// 20 at once: the last ends after ~2 s.
	wave("burst", 101, 0, 0)
	time.Sleep(time.Second)
	// One every 50 ms: the queue grows by one call every 100 ms.
	wave("staggered", 201, 50*time.Millisecond, 0)
	time.Sleep(time.Second)
	// 20 at once with 1 s deadlines: the later ones expire queued, or on the wire as soon as a
	// slot frees (their grpc-timeout was computed when issued, before they queued).
	wave("deadline", 301, 0, time.Second)
	time.Sleep(500 * time.Millisecond)
}

// ---------------------------------------------------------------- leaks

type openStream struct {
	mu          sync.Mutex
	id          int
	method      string
	start, last float64
	sent, got   int
	peer        interface{}
}

func (o *openStream) note(sent, got int, p interface{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent, o.got, o.last = o.sent+sent, o.got+got, now()
	if p != nil {
		o.peer = p
	}
}

func leaks(target, target2 string, log *logger, marker string) {
	c, cc := dial(target)
	defer cc.Close()
	var c2 client
	if target2 != "" {
		var cc2 *grpc.ClientConn
		c2, cc2 = dial(target2)
		defer cc2.Close()
	}
	var opens []*openStream
	// keep: the open streams' objects, so nothing of them is collected or closed.
	var keep []interface{}
	md := func(id int) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-call-id", strconv.Itoa(id))
	}
	E := func(m string) *pb.EchoRequest { return &pb.EchoRequest{Message: m} }
	open := func(id int, method string) *openStream {
		o := &openStream{id: id, method: method, start: now()}
		opens = append(opens, o)
		return o
	}
	openBidi := func(id, n int) {
		o := open(id, echoPath("Bidi"))
		st, err := c.echo.Bidi(md(id))
		if err != nil {
			panic(err)
		}
		keep = append(keep, st)
		for k := 0; k < n; k++ {
			if err := st.Send(&pb.EchoRequest{Message: fmt.Sprintf("open-%d-%d", id, k), ReplyCount: 1}); err != nil {
				panic(err)
			}
			r, err := st.Recv()
			if err != nil {
				panic(err)
			}
			o.note(1, 1, r.Peer)
		}
	}
	openServerStream := func(id int) { // the server sends one reply, then sleeps 10 min
		o := open(id, echoPath("ServerStream"))
		st, err := c.echo.ServerStream(md(id), &pb.EchoRequest{Message: fmt.Sprintf("open-%d", id), ReplyCount: 3, ReplySize: 10, SleepMs: 600000})
		if err != nil {
			panic(err)
		}
		keep = append(keep, st)
		o.note(1, 0, nil)
		r, err := st.Recv()
		if err != nil {
			panic(err)
		}
		o.note(0, 1, r.Peer)
	}
	openWatch := func(id int) {
		o := open(id, "/grpctap.test.Store/Watch")
		st, err := c.store.Watch(md(id))
		if err != nil {
			panic(err)
		}
		keep = append(keep, st)
		if err := st.Send(&pb.Key{Id: "watched"}); err != nil {
			panic(err)
		}
		if _, err := st.Recv(); err != nil {
			panic(err)
		}
		hdr, _ := st.Header()
		o.note(1, 1, peerFrom(hdr))
	}
	openClientStream := func(id int) { // one request, no CloseSend: the server waits
		o := open(id, echoPath("ClientStream"))
		st, err := c.echo.ClientStream(md(id))
		if err != nil {
			panic(err)
		}
		keep = append(keep, st)
		if err := st.Send(E(fmt.Sprintf("open-%d", id))); err != nil {
			panic(err)
		}
		o.note(1, 0, nil)
	}

	run(c, log, 0, spec{svc: "Store", method: "Put", item: &pb.Item{Id: "watched", Data: []byte("w")}}, 1, "setup")
	openBidi(9001, 1)
	openBidi(9002, 2)
	openWatch(9003)
	openServerStream(9004)
	openServerStream(9005)
	openClientStream(9006)

	// The traffic around them, one call every ~80 ms for ~12 s.
	for i := 0; i < 130; i++ {
		id := 100 + i
		var s spec
		conn, cl := 0, c
		switch {
		case i == 60:
			openBidi(9007, 1) // one more, opened mid-capture
			continue
		case i%20 == 19: // past its deadline: grpc-go client resets at 100 ms, the server answers at 300 ms
			s = spec{svc: "Echo", method: "Unary", timeout: 100 * time.Millisecond, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("late-%d", i), SleepMs: 300}}}
		case i%20 == 9 && target2 != "": // the same against the python (C-core) server
			conn, cl = 1, c2
			s = spec{svc: "Echo", method: "Unary", timeout: 100 * time.Millisecond, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("late-py-%d", i), SleepMs: 300}}}
		case i%20 == 14 && target2 != "":
			conn, cl = 1, c2
			s = spec{svc: "Echo", method: "Unary", timeout: time.Second, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("py-%d", i), SleepMs: 10}}}
		default: // i % 10 == 9 is always one of the cases above
			switch i % 10 {
			case 0, 3, 6, 8: // Echo.Unary: always a deadline
				e := E(fmt.Sprintf("u%d", i))
				e.SleepMs, e.ReplySize = int32(5+(i%4)*5), int32(20+i%50)
				s = spec{svc: "Echo", method: "Unary", timeout: time.Second, echo: []*pb.EchoRequest{e}}
			case 1, 5: // Store.Get: never a deadline; one in four NOT_FOUND
				key := "watched"
				if i%20 == 15 {
					key = fmt.Sprintf("missing-%d", i)
				}
				s = spec{svc: "Store", method: "Get", keys: []*pb.Key{{Id: key}}}
			case 2:
				s = spec{svc: "Store", method: "Put", item: &pb.Item{Id: fmt.Sprintf("k%d", i%7), Data: []byte("d")}}
			case 4: // short ServerStream, the same method as two open ones
				e := E(fmt.Sprintf("s%d", i))
				e.ReplyCount, e.ReplySize, e.SleepMs = 3, 10, 5
				s = spec{svc: "Echo", method: "ServerStream", echo: []*pb.EchoRequest{e}}
			case 7: // short Bidi, the same method as three open ones
				s = spec{svc: "Echo", method: "Bidi", echo: []*pb.EchoRequest{{Message: fmt.Sprintf("b%d-0", i), ReplyCount: 1}, {Message: fmt.Sprintf("b%d-1", i), ReplyCount: 1}}}
			}
		}
		run(cl, log, conn, s, id, "traffic")
		time.Sleep(80 * time.Millisecond)
	}
	// Idle: only the open streams are left. The script stops the capture, then creates MARKER.
	os.WriteFile(marker+".ready", nil, 0o644)
	for !exists(marker) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, o := range opens {
		o.mu.Lock()
		log.write(map[string]interface{}{
			"conn": 0, "call_id": o.id, "method": o.method, "req_msgs": o.sent, "resp_msgs": o.got,
			"status": "OPEN", "message": "", "timeout_s": nil, "cancelled": false, "client_peer": o.peer,
			"start": o.start, "end": nil, "last_msg": o.last, "logged_at": now(), "phase": "open",
		})
		o.mu.Unlock()
	}
	_ = keep
}

// ---------------------------------------------------------------- nested

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// parseTraceparent: trace id and parent (span) id of a version-00 traceparent.
func parseTraceparent(v string) (string, string) {
	p := strings.Split(v, "-")
	if len(p) != 4 || len(p[1]) != 32 || len(p[2]) != 16 {
		return "", ""
	}
	return p[1], p[2]
}

type relayServer struct {
	echoServer
	up   pb.EchoClient
	addr string
	log  *logger
}

func (s *relayServer) Unary(ctx context.Context, r *pb.EchoRequest) (*pb.EchoReply, error) {
	in, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := in.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	parentID, _ := strconv.Atoi(get("x-call-id"))
	trace, parentSpan := parseTraceparent(get("traceparent"))
	var parentTimeout interface{}
	if dl, ok := ctx.Deadline(); ok {
		parentTimeout = time.Until(dl).Seconds()
	}
	mode := "budget"
	if w := strings.Split(r.Message, "-"); len(w) > 1 {
		mode = w[1]
	}
	span := randHex(8)
	tp := fmt.Sprintf("00-%s-%s-01", trace, span)
	childID := 10000 + parentID
	out := metadata.Pairs("traceparent", tp, "x-call-id", strconv.Itoa(childID))
	var cctx context.Context
	cancel := context.CancelFunc(func() {})
	switch mode {
	case "drop": // a fresh context: no deadline, and no cancellation when the parent ends
		cctx = metadata.NewOutgoingContext(context.Background(), out)
	case "long": // a fresh 10 s deadline, not cancelled with the parent
		cctx, cancel = context.WithTimeout(metadata.NewOutgoingContext(context.Background(), out), 10*time.Second)
	default: // budget: the incoming context, whose deadline grpc-go sends on as grpc-timeout
		mode = "budget"
		cctx = metadata.NewOutgoingContext(ctx, out)
	}
	defer cancel()
	var timeout interface{}
	if dl, ok := cctx.Deadline(); ok {
		timeout = time.Until(dl).Seconds()
	}
	start := now()
	rep, err := s.up.Unary(cctx, &pb.EchoRequest{Message: r.Message, SleepMs: r.SleepMs, ReplySize: r.ReplySize})
	end := now()
	code, msg := statusOf(err)
	var p interface{}
	if rep != nil {
		p = rep.Peer
	}
	s.log.write(map[string]interface{}{
		"call_id": childID, "parent_call_id": parentID, "method": echoPath("Unary"), "target": s.addr,
		"trace_id": trace, "parent_span_id": parentSpan, "span_id": span, "traceparent": tp,
		"mode": mode, "timeout_s": timeout, "parent_timeout_s": parentTimeout, "status": code,
		"message": msg, "req_msgs": 1, "resp_msgs": map[bool]int{true: 1, false: 0}[err == nil],
		"client_peer": p, "start": start, "end": end, "parent_ended_first": ctx.Err() != nil,
	})
	if err != nil {
		return nil, err
	}
	return &pb.EchoReply{Message: rep.Message, Payload: rep.Payload, Peer: peerOf(ctx)}, nil
}

func serveRelay(addr, up, children string) {
	f, err := os.Create(children)
	if err != nil {
		panic(err)
	}
	cc, err := grpc.Dial(up, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		panic(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	s := grpc.NewServer()
	pb.RegisterEchoServer(s, &relayServer{up: pb.NewEchoClient(cc), addr: up, log: &logger{f: f}})
	fmt.Println("ready")
	if err := s.Serve(lis); err != nil {
		panic(err)
	}
}

type nestedPlan struct {
	mode  string
	sleep int32
}

func nested(target string, log *logger) {
	c, cc := dial(target)
	defer cc.Close()
	one := func(id int, n nestedPlan, phase string) {
		trace, span := randHex(16), randHex(8)
		tp := fmt.Sprintf("00-%s-%s-01", trace, span)
		const timeout = time.Second
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-call-id", strconv.Itoa(id), "traceparent", tp)
		start := now()
		rep, err := c.echo.Unary(ctx, &pb.EchoRequest{Message: fmt.Sprintf("nested-%s-%d", n.mode, id), SleepMs: n.sleep, ReplySize: 16})
		end := now()
		code, msg := statusOf(err)
		var p interface{}
		if rep != nil {
			p = rep.Peer
		}
		log.write(map[string]interface{}{
			"conn": 0, "call_id": id, "method": echoPath("Unary"), "req_msgs": 1,
			"resp_msgs": map[bool]int{true: 1, false: 0}[err == nil], "status": code, "message": msg,
			"timeout_s": timeout.Seconds(), "cancelled": false, "client_peer": p, "start": start, "end": end,
			"trace_id": trace, "span_id": span, "traceparent": tp, "mode": n.mode,
			"upstream_sleep_ms": n.sleep, "phase": phase,
		})
	}
	plan := []nestedPlan{
		{"budget", 50}, {"drop", 50}, {"long", 50},
		{"budget", 200}, {"drop", 200}, {"long", 200},
		{"budget", 1500}, {"drop", 1500}, {"long", 1500}, // past the client's 1 s
		{"budget", 20}, {"drop", 20}, {"long", 20},
	}
	id := 0
	for _, n := range plan {
		id++
		one(id, n, "serial")
		time.Sleep(150 * time.Millisecond)
	}
	var wg sync.WaitGroup // three at once
	for _, n := range []nestedPlan{{"budget", 100}, {"drop", 100}, {"long", 100}} {
		id++
		wg.Add(1)
		go func(id int, n nestedPlan) { defer wg.Done(); one(id, n, "concurrent") }(id, n)
	}
	wg.Wait()
	time.Sleep(time.Second) // the orphaned children (1.5 s upstream) end before the capture does
}
