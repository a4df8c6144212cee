// The Echo and Store test services (testdata/proto/echo.proto, shared.proto) on grpc-go, with a
// scripted client that logs every call, for making captures. Behaves like py_echo.py.
//
//	go-echo server --addr 127.0.0.1:50200 [--h2c] [--keepalive-min-time 5s] [--keepalive-permit-without-stream]
//	go-echo client --target 127.0.0.1:50200 --scenario midjoin|deadlines --log calls.jsonl [--marker F]
//	go-echo client --target 127.0.0.1:50200 --scenario streams --log calls.jsonl --messages messages.jsonl
//	go-echo client --target 127.0.0.1:50200 --scenario tls --log calls.jsonl --tls-ca ca.pem [--tls-keylog F] ...
//
// --h2c (h2c.go) serves the same server through net/http and x/net/http2/h2c, which also
// accepts the HTTP/1.1 Upgrade: h2c of RFC 7540 section 3.2.
//
// TLS (tls.go) is off unless --tls-cert (server) or --tls-ca (client) is given; any scenario
// can run over it.
//
// Built offline from Debian's packages (golang-google-grpc-dev, golang-goprotobuf-dev) in GOPATH
// mode; see make_midjoin_captures.sh. The generated code (protoc --go_out=plugins=grpc) goes to
// goecho/pb next to this file in a temporary GOPATH. The streams scenario (streams.go) also
// needs proto/gauge.proto.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "goecho/pb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ---------------------------------------------------------------- server

func peerOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	if a, ok := p.Addr.(*net.TCPAddr); ok && a.IP.To4() == nil {
		return "ipv6:" + p.Addr.String()
	}
	return "ipv4:" + p.Addr.String()
}

// echoTag sends an x-request-tag back as trailing metadata x-echo-tag.
func echoTag(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-request-tag"); len(v) > 0 {
		grpc.SetTrailer(ctx, metadata.Pairs("x-echo-tag", v[0]))
	}
}

func reply(r *pb.EchoRequest, index int32, p string) *pb.EchoReply {
	return &pb.EchoReply{Message: r.Message, Index: index, Payload: []byte(strings.Repeat("r", int(r.ReplySize))), Peer: p}
}

func finish(r *pb.EchoRequest) error {
	if r.SleepMs > 0 {
		time.Sleep(time.Duration(r.SleepMs) * time.Millisecond)
	}
	if r.StatusCode != 0 {
		return status.Error(codes.Code(r.StatusCode), r.StatusMessage)
	}
	return nil
}

type echoServer struct{}

func (echoServer) Unary(ctx context.Context, r *pb.EchoRequest) (*pb.EchoReply, error) {
	echoTag(ctx)
	if err := finish(r); err != nil {
		return nil, err
	}
	return reply(r, 0, peerOf(ctx)), nil
}

func (echoServer) ServerStream(r *pb.EchoRequest, s pb.Echo_ServerStreamServer) error {
	echoTag(s.Context())
	p := peerOf(s.Context())
	for i := int32(0); i < r.ReplyCount; i++ {
		if i > 0 && r.SleepMs > 0 {
			time.Sleep(time.Duration(r.SleepMs) * time.Millisecond)
		}
		if err := s.Send(reply(r, i, p)); err != nil {
			return err
		}
	}
	if r.StatusCode != 0 {
		return status.Error(codes.Code(r.StatusCode), r.StatusMessage)
	}
	return nil
}

func (echoServer) ClientStream(s pb.Echo_ClientStreamServer) error {
	echoTag(s.Context())
	last, n := &pb.EchoRequest{}, int32(0)
	for {
		r, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		last, n = r, n+1
	}
	if err := finish(last); err != nil {
		return err
	}
	return s.SendAndClose(&pb.EchoReply{Message: strconv.Itoa(int(n)), Index: n, Peer: peerOf(s.Context())})
}

func (echoServer) Bidi(s pb.Echo_BidiServer) error {
	echoTag(s.Context())
	p := peerOf(s.Context())
	for i := int32(0); ; i++ {
		r, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n := r.ReplyCount
		if n < 1 {
			n = 1
		}
		for j := int32(0); j < n; j++ {
			if err := s.Send(reply(r, i, p)); err != nil {
				return err
			}
		}
		if r.StatusCode != 0 {
			return finish(r)
		}
	}
}

type storeServer struct {
	mu    sync.Mutex
	items map[string]*pb.Item
}

// begin sends the x-peer header and arranges the x-echo-tag trailer.
func begin(ctx context.Context) {
	grpc.SendHeader(ctx, metadata.Pairs("x-peer", peerOf(ctx)))
	echoTag(ctx)
}

func checkID(id string) error {
	switch {
	case id == "":
		return status.Error(codes.InvalidArgument, "id required")
	case strings.HasPrefix(id, "denied"):
		return status.Error(codes.PermissionDenied, "read-only")
	case strings.HasPrefix(id, "unavailable"):
		return status.Error(codes.Unavailable, "try later")
	}
	return nil
}

func notFound(id string) error { return status.Error(codes.NotFound, "no item "+id) }

func (s *storeServer) Get(ctx context.Context, k *pb.Key) (*pb.Item, error) {
	begin(ctx)
	if err := checkID(k.Id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.items[k.Id]; ok {
		return it, nil
	}
	return nil, notFound(k.Id)
}

func (s *storeServer) Delete(ctx context.Context, k *pb.Key) (*pb.Item, error) {
	begin(ctx)
	if err := checkID(k.Id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.items[k.Id]; ok {
		delete(s.items, k.Id)
		return it, nil
	}
	return nil, notFound(k.Id)
}

func (s *storeServer) Put(ctx context.Context, it *pb.Item) (*pb.Key, error) {
	begin(ctx)
	if err := checkID(it.Id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var v int64
	if old, ok := s.items[it.Id]; ok {
		v = old.Version
	}
	s.items[it.Id] = &pb.Item{Id: it.Id, Data: it.Data, Version: v + 1, Tags: it.Tags}
	return &pb.Key{Id: it.Id}, nil
}

func (s *storeServer) List(k *pb.Key, st pb.Store_ListServer) error {
	begin(st.Context())
	if err := checkID(k.Id); err != nil {
		return err
	}
	s.mu.Lock()
	var found []*pb.Item
	for id, it := range s.items {
		if strings.HasPrefix(id, k.Id) {
			found = append(found, it)
		}
	}
	s.mu.Unlock()
	sort.Slice(found, func(a, b int) bool { return found[a].Id < found[b].Id })
	for _, it := range found {
		if err := st.Send(it); err != nil {
			return err
		}
	}
	return nil
}

func (s *storeServer) Watch(st pb.Store_WatchServer) error {
	begin(st.Context())
	for {
		k, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := checkID(k.Id); err != nil {
			return err
		}
		s.mu.Lock()
		it, ok := s.items[k.Id]
		s.mu.Unlock()
		if !ok {
			return notFound(k.Id)
		}
		if err := st.Send(it); err != nil {
			return err
		}
	}
}

// newServer: the grpc-go server with the Echo and Store services.
func newServer(opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20), grpc.MaxSendMsgSize(64 << 20)}, opts...)
	s := grpc.NewServer(opts...)
	pb.RegisterEchoServer(s, echoServer{})
	pb.RegisterStoreServer(s, &storeServer{items: map[string]*pb.Item{}})
	return s
}

// The server's keepalive enforcement policy (--keepalive-min-time, --keepalive-permit-without-stream).
var (
	kaMinTime time.Duration
	kaPermit  bool
)

func serve(addr string) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	var opts []grpc.ServerOption
	if cfg := serverTLS(); cfg != nil { // credentials.NewTLS adds "h2" to the ALPN list
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	if kaMinTime > 0 || kaPermit { // unset: grpc-go's default policy (MinTime 5 min, no pings without a call)
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: kaMinTime, PermitWithoutStream: kaPermit}))
	}
	s := newServer(opts...)
	fmt.Println("ready")
	if err := s.Serve(lis); err != nil {
		panic(err)
	}
}

// ---------------------------------------------------------------- client

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL",
	codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

type logger struct {
	mu sync.Mutex
	f  *os.File
}

func (l *logger) write(rec map[string]interface{}) {
	b, err := json.Marshal(rec) // map keys come out sorted
	if err != nil {
		panic(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Write(append(b, '\n'))
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// spec is one call of a scenario, the same in every stack's client.
type spec struct {
	svc, method string // "Echo", "Unary"
	echo        []*pb.EchoRequest
	keys        []*pb.Key
	item        *pb.Item
	timeout     time.Duration
	cancelAfter time.Duration
	tag         string
}

type client struct {
	echo  pb.EchoClient
	store pb.StoreClient
}

func peerFrom(mds ...metadata.MD) interface{} {
	for _, md := range mds {
		if v := md.Get("x-peer"); len(v) > 0 {
			return v[0]
		}
	}
	return nil
}

// run makes one call and logs what the client saw.
func run(c client, log *logger, conn int, s spec, callID int, phase string) {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if s.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
	}
	defer cancel()
	if s.cancelAfter > 0 {
		var cancel2 context.CancelFunc
		ctx, cancel2 = context.WithCancel(ctx)
		t := time.AfterFunc(s.cancelAfter, cancel2)
		defer t.Stop()
		defer cancel2()
	}
	kv := []string{"x-call-id", strconv.Itoa(callID)}
	if s.tag != "" {
		kv = append(kv, "x-request-tag", s.tag)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	start := now()
	var p interface{}
	nResp, nReq := 0, 0
	var hdr, tr metadata.MD
	var err error
	switch s.svc + "." + s.method {
	case "Echo.Unary":
		nReq = 1
		var r *pb.EchoReply
		if r, err = c.echo.Unary(ctx, s.echo[0]); err == nil {
			nResp, p = 1, r.Peer
		}
	case "Echo.ServerStream":
		nReq = 1
		var st pb.Echo_ServerStreamClient
		if st, err = c.echo.ServerStream(ctx, s.echo[0]); err == nil {
			for {
				var r *pb.EchoReply
				if r, err = st.Recv(); err != nil {
					break
				}
				nResp, p = nResp+1, r.Peer
			}
		}
	case "Echo.ClientStream":
		nReq = len(s.echo)
		var st pb.Echo_ClientStreamClient
		if st, err = c.echo.ClientStream(ctx); err == nil {
			for _, r := range s.echo {
				if st.Send(r) != nil {
					break
				}
			}
			var r *pb.EchoReply
			if r, err = st.CloseAndRecv(); err == nil {
				nResp, p = 1, r.Peer
			}
		}
	case "Echo.Bidi":
		nReq = len(s.echo)
		var st pb.Echo_BidiClient
		if st, err = c.echo.Bidi(ctx); err == nil {
			go func() {
				for _, r := range s.echo {
					if st.Send(r) != nil {
						return
					}
				}
				st.CloseSend()
			}()
			for {
				var r *pb.EchoReply
				if r, err = st.Recv(); err != nil {
					break
				}
				nResp, p = nResp+1, r.Peer
			}
		}
	case "Store.Get", "Store.Delete":
		nReq = 1
		f := c.store.Get
		if s.method == "Delete" {
			f = c.store.Delete
		}
		if _, err = f(ctx, s.keys[0], grpc.Header(&hdr), grpc.Trailer(&tr)); err == nil {
			nResp = 1
		}
		p = peerFrom(hdr, tr)
	case "Store.Put":
		nReq = 1
		if _, err = c.store.Put(ctx, s.item, grpc.Header(&hdr), grpc.Trailer(&tr)); err == nil {
			nResp = 1
		}
		p = peerFrom(hdr, tr)
	case "Store.List":
		nReq = 1
		var st pb.Store_ListClient
		if st, err = c.store.List(ctx, s.keys[0]); err == nil {
			for {
				if _, err = st.Recv(); err != nil {
					break
				}
				nResp++
			}
			hdr, _ = st.Header()
			p = peerFrom(hdr, st.Trailer())
		}
	case "Store.Watch":
		nReq = len(s.keys)
		var st pb.Store_WatchClient
		if st, err = c.store.Watch(ctx); err == nil {
			go func() {
				for _, k := range s.keys {
					if st.Send(k) != nil {
						return
					}
				}
				st.CloseSend()
			}()
			for {
				if _, err = st.Recv(); err != nil {
					break
				}
				nResp++
			}
			hdr, _ = st.Header()
			p = peerFrom(hdr, st.Trailer())
		}
	default:
		panic(s.svc + "." + s.method)
	}
	if err == io.EOF {
		err = nil
	}
	st := status.Convert(err)
	logCall(log, conn, callID, s, nReq, nResp, codeNames[st.Code()], st.Message(), p, start, phase)
}

func logCall(log *logger, conn, callID int, s spec, nReq, nResp int, code, msg string, p interface{}, start float64, phase string) {
	var timeout interface{}
	if s.timeout > 0 {
		timeout = s.timeout.Seconds()
	}
	rec := map[string]interface{}{
		"conn": conn, "call_id": callID, "method": "/grpctap.test." + s.svc + "/" + s.method,
		"req_msgs": nReq, "resp_msgs": nResp, "status": code, "message": msg, "timeout_s": timeout,
		"cancelled": s.cancelAfter > 0, "client_peer": p, "start": start, "end": now(),
	}
	if phase != "" {
		rec["phase"] = phase
	}
	log.write(rec)
}

// ---------------------------------------------------------------- scenarios

// codeList: the error statuses the midjoin Unary calls cycle through.
var codeList = []int32{5, 3, 7, 14, 9, 8, 6, 16, 13, 10, 11, 2}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// plan is call i of connection conn in the midjoin scenario; py_echo.py, node-echo and
// tonic-echo have the same function.
func plan(conn, i int) spec {
	k, r := i%16, i/16
	tag := ""
	if i%3 != 2 {
		tag = fmt.Sprintf("tag-%02d", (i/2)%40)
	}
	id := func(n int) string { return fmt.Sprintf("c%d-k%d", conn, n) }
	E := func(m string) *pb.EchoRequest { return &pb.EchoRequest{Message: m} }
	key := func(s string) []*pb.Key { return []*pb.Key{{Id: s}} }
	s := spec{svc: "Echo", method: "Unary", tag: tag}
	switch k {
	case 0:
		e := E(fmt.Sprintf("u%d", i))
		e.ReplySize = int32(20 + (i%7)*10)
		s.echo = []*pb.EchoRequest{e}
	case 1:
		s.svc, s.method = "Store", "Put"
		s.item = &pb.Item{Id: id(i % 23), Data: []byte(strings.Repeat("d", i%50)), Tags: []string{fmt.Sprintf("t%d", r%3)}}
	case 2:
		c := codeList[r%len(codeList)]
		e := E(fmt.Sprintf("e%d", i))
		e.StatusCode, e.StatusMessage = c, fmt.Sprintf("error %d", c)
		s.echo = []*pb.EchoRequest{e}
	case 3:
		s.svc, s.method, s.keys = "Store", "Get", key(id((i*7)%29))
	case 4:
		e := E(fmt.Sprintf("s%d", i))
		e.ReplyCount, e.ReplySize = 3, 10
		if r%4 == 3 {
			e.StatusCode, e.StatusMessage = 14, "stream broke"
		}
		s.method, s.echo = "ServerStream", []*pb.EchoRequest{e}
	case 5:
		s.svc, s.method, s.keys = "Store", "List", key(fmt.Sprintf("c%d-k1", conn))
	case 6:
		s.method = "ClientStream"
		for j := 0; j < 3; j++ {
			s.echo = append(s.echo, E(fmt.Sprintf("c%d-%d", i, j)))
		}
		if r%3 == 2 {
			s.echo[2].StatusCode, s.echo[2].StatusMessage = 3, "bad stream"
		}
	case 7:
		s.svc, s.method, s.keys = "Store", "Delete", key(id((i*3)%23))
	case 8:
		s.method = "Bidi"
		for j := 0; j < 2; j++ {
			e := E(fmt.Sprintf("b%d-%d", i, j))
			e.ReplyCount = 1
			s.echo = append(s.echo, e)
		}
		if r%4 == 1 {
			s.echo[1].StatusCode, s.echo[1].StatusMessage = 7, "no bidi"
		}
	case 9:
		s.svc, s.method = "Store", "Watch"
		s.keys = []*pb.Key{{Id: id((i * 5) % 23)}, {Id: id((i * 11) % 23)}}
	case 10:
		e := E(fmt.Sprintf("t%d", i))
		e.ReplySize = 5
		s.echo, s.timeout = []*pb.EchoRequest{e}, 5*time.Second
	case 11:
		s.svc, s.method = "Store", "Put"
		if r%2 == 0 {
			s.item = &pb.Item{Data: []byte("x")}
		} else {
			s.item = &pb.Item{Id: id(i % 23), Tags: []string{fmt.Sprintf("t%d", r%3), "extra"}}
			s.timeout = 10 * time.Second
		}
	case 12:
		if r%3 == 0 {
			e := E(fmt.Sprintf("slow%d", i))
			e.SleepMs = 200
			s.echo, s.timeout = []*pb.EchoRequest{e}, 50*time.Millisecond
		} else {
			e := E(fmt.Sprintf("q%d", i))
			e.SleepMs = 3
			s.echo, s.timeout = []*pb.EchoRequest{e}, 2*time.Second
		}
	case 13:
		s.svc, s.method, s.keys, s.timeout = "Store", "Get", key(fmt.Sprintf("missing-%d", r)), time.Second
	case 14:
		s.method = "ServerStream"
		if r%2 == 1 {
			e := E(fmt.Sprintf("x%d", i))
			e.ReplyCount, e.SleepMs = 5, 40
			s.echo, s.cancelAfter = []*pb.EchoRequest{e}, 70*time.Millisecond
		} else {
			e := E(fmt.Sprintf("y%d", i))
			e.ReplyCount, e.SleepMs = 5, 2
			s.echo = []*pb.EchoRequest{e}
		}
	case 15:
		s.svc = "Store"
		if r%2 == 0 {
			s.method, s.keys = "Get", key(fmt.Sprintf("denied-%d", conn))
		} else {
			s.method, s.keys = "List", key("unavailable")
		}
	}
	return s
}

// calls runs plan(conn, i) for i in [from, to); at every i%50 == 25, calls i..i+3 run at once.
func calls(c client, log *logger, conn, from, to int, phase string) {
	for i := from; i < to; {
		if i%50 == 25 && i+4 <= to {
			var wg sync.WaitGroup
			for j := i; j < i+4; j++ {
				wg.Add(1)
				go func(j int) { defer wg.Done(); run(c, log, conn, plan(conn, j), conn*10000+j+1, phase) }(j)
			}
			wg.Wait()
			i += 4
			continue
		}
		run(c, log, conn, plan(conn, i), conn*10000+i+1, phase)
		i++
	}
}

// longStreams starts, before the capture, three streams that end inside it: a client-paced
// Bidi that ends OK 8 messages after go, a Watch that ends NOT_FOUND 6 keys after go, and a slow
// ServerStream the client cancels 1.5 s after go.
func longStreams(c client, log *logger, conn int, goCh chan struct{}, wg *sync.WaitGroup) {
	base := conn*10000 + 9000
	run(c, log, conn, spec{svc: "Store", method: "Put", item: &pb.Item{Id: fmt.Sprintf("c%d-watch", conn), Data: []byte("watched")}, tag: "long"}, base, "before")
	md := func(id int, tag string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-call-id", strconv.Itoa(id), "x-request-tag", tag)
	}
	isGo := func() bool {
		select {
		case <-goCh:
			return true
		default:
			return false
		}
	}
	wg.Add(3)
	go func() { // Bidi, client-paced
		defer wg.Done()
		s := spec{svc: "Echo", method: "Bidi"}
		start := now()
		st, err := c.echo.Bidi(md(base+1, "long-bidi"))
		sent, after := 0, 0
		var p interface{}
		nResp := 0
		if err == nil {
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					time.Sleep(200 * time.Millisecond)
					if isGo() {
						after++
						if after > 8 {
							st.CloseSend()
							return
						}
					}
					if st.Send(&pb.EchoRequest{Message: fmt.Sprintf("tick-%d", sent), ReplyCount: 1}) != nil {
						return
					}
					sent++
				}
			}()
			for {
				var r *pb.EchoReply
				if r, err = st.Recv(); err != nil {
					break
				}
				nResp, p = nResp+1, r.Peer
			}
			<-done
		}
		if err == io.EOF {
			err = nil
		}
		stt := status.Convert(err)
		logCall(log, conn, base+1, s, sent, nResp, codeNames[stt.Code()], stt.Message(), p, start, "before")
	}()
	go func() { // Watch, client-paced, ends NOT_FOUND
		defer wg.Done()
		s := spec{svc: "Store", method: "Watch"}
		start := now()
		st, err := c.store.Watch(md(base+2, "long-watch"))
		sent, after, nResp := 0, 0, 0
		var p interface{}
		if err == nil {
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					time.Sleep(250 * time.Millisecond)
					id := fmt.Sprintf("c%d-watch", conn)
					if isGo() {
						after++
						if after > 6 {
							id = fmt.Sprintf("c%d-gone", conn)
						}
					}
					if st.Send(&pb.Key{Id: id}) != nil {
						return
					}
					sent++
					if after > 6 {
						return
					}
				}
			}()
			for {
				if _, err = st.Recv(); err != nil {
					break
				}
				nResp++
			}
			<-done
			hdr, _ := st.Header()
			p = peerFrom(hdr, st.Trailer())
		}
		stt := status.Convert(err)
		logCall(log, conn, base+2, s, sent, nResp, codeNames[stt.Code()], stt.Message(), p, start, "before")
	}()
	go func() { // slow ServerStream, cancelled by the client
		defer wg.Done()
		s := spec{svc: "Echo", method: "ServerStream", cancelAfter: 1500 * time.Millisecond}
		start := now()
		ctx, cancel := context.WithCancel(md(base+3, "long-stream"))
		go func() { <-goCh; time.Sleep(1500 * time.Millisecond); cancel() }()
		st, err := c.echo.ServerStream(ctx, &pb.EchoRequest{Message: "slow-stream", ReplyCount: 100000, SleepMs: 100})
		nResp := 0
		var p interface{}
		if err == nil {
			for {
				var r *pb.EchoReply
				if r, err = st.Recv(); err != nil {
					break
				}
				nResp, p = nResp+1, r.Peer
			}
		}
		stt := status.Convert(err)
		logCall(log, conn, base+3, s, 1, nResp, codeNames[stt.Code()], stt.Message(), p, start, "before")
	}()
}

func dial(target string) (client, *grpc.ClientConn) {
	cred := grpc.WithInsecure()
	if cfg := clientTLS(); cfg != nil {
		cred = grpc.WithTransportCredentials(credentials.NewTLS(cfg))
	}
	cc, err := grpc.Dial(target, cred, grpc.WithBlock())
	if err != nil {
		panic(err)
	}
	return client{pb.NewEchoClient(cc), pb.NewStoreClient(cc)}, cc
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func midjoin(target string, log *logger, marker string) {
	c0, cc0 := dial(target)
	c1, cc1 := dial(target)
	defer cc0.Close()
	defer cc1.Close()
	cs := []client{c0, c1}
	goCh := make(chan struct{})
	var long, wg sync.WaitGroup
	for conn, c := range cs {
		longStreams(c, log, conn, goCh, &long)
		wg.Add(1)
		go func(conn int, c client) { defer wg.Done(); calls(c, log, conn, 0, 200, "before") }(conn, c)
	}
	wg.Wait()
	os.WriteFile(marker+".ready", nil, 0o644)
	for !exists(marker) {
		time.Sleep(50 * time.Millisecond)
	}
	close(goCh)
	for conn, c := range cs {
		wg.Add(1)
		go func(conn int, c client) { defer wg.Done(); calls(c, log, conn, 200, 500, "during") }(conn, c)
	}
	wg.Wait()
	long.Wait()
}

// deadlines: Unary calls past their deadline (some 4 at once), calls that finish just before
// it, ServerStreams that hit it mid-stream, and client cancellations shortly before it.
func deadlines(target string, log *logger) {
	c, cc := dial(target)
	defer cc.Close()
	id := 0
	next := func() int { id++; return id }
	one := func(s spec) { run(c, log, 0, s, next(), "") }
	for _, t := range []float64{0.02, 0.05, 0.1, 0.25, 1.0} {
		m := t * 1000
		margin := m * 0.04
		if margin < 8 {
			margin = 8
		}
		to := ms(m)
		for rep := 0; rep < 3; rep++ {
			one(spec{svc: "Echo", method: "Unary", timeout: to, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("late-%g-%d", t, rep), SleepMs: int32(m*1.5 + 20)}}})
			one(spec{svc: "Echo", method: "Unary", timeout: to, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("ontime-%g-%d", t, rep), SleepMs: int32(m - margin)}}})
		}
		var wg sync.WaitGroup
		for j := 0; j < 4; j++ {
			s := spec{svc: "Echo", method: "Unary", timeout: to, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("conc-%g-%d", t, j), SleepMs: int32(m*2 + 20)}}}
			n := next()
			wg.Add(1)
			go func() { defer wg.Done(); run(c, log, 0, s, n, "") }()
		}
		wg.Wait()
		one(spec{svc: "Echo", method: "Unary", timeout: to, cancelAfter: ms(m * 0.7), echo: []*pb.EchoRequest{{Message: fmt.Sprintf("cancel-u-%g", t), SleepMs: int32(m*2 + 20)}}})
		one(spec{svc: "Echo", method: "ServerStream", timeout: to, cancelAfter: ms(m * 0.8), echo: []*pb.EchoRequest{{Message: fmt.Sprintf("cancel-s-%g", t), ReplyCount: 20, SleepMs: int32(m / 4)}}})
		if t >= 0.1 {
			for rep := 0; rep < 2; rep++ {
				one(spec{svc: "Echo", method: "ServerStream", timeout: to, echo: []*pb.EchoRequest{{Message: fmt.Sprintf("midstream-%g-%d", t, rep), ReplyCount: 20, SleepMs: int32(m / 4)}}})
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // the last reset reaches the wire before the connection closes
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-echo server --addr A [--h2c] [--tls-cert F --tls-key F [--tls-curves p256]] | client --target H:P --scenario midjoin|deadlines|streams|tls --log F [--marker M] [--messages F] [--tls-ca F [--tls-keylog F] [--tls-max 1.2] [--tls-suite NAME] [--tls-resume]]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:50200", "server address")
	target := fs.String("target", "", "server to call")
	scenario := fs.String("scenario", "", "midjoin, deadlines, streams or tls")
	logPath := fs.String("log", "", "calls.jsonl to write")
	marker := fs.String("marker", "", "midjoin: writes MARKER.ready, waits for MARKER")
	messages := fs.String("messages", "", "streams: the per-message log to write")
	fs.StringVar(&tlsOpt.cert, "tls-cert", "", "server: serve TLS with this certificate (PEM)")
	fs.StringVar(&tlsOpt.key, "tls-key", "", "server: the certificate's private key (PEM)")
	fs.StringVar(&tlsOpt.curves, "tls-curves", "", "server: p256 offers only P-256 (a HelloRetryRequest to a Go client)")
	fs.StringVar(&tlsOpt.ca, "tls-ca", "", "client: TLS, trusting this CA (PEM), server name localhost")
	fs.StringVar(&tlsOpt.keylog, "tls-keylog", "", "client: append the TLS secrets to this file (NSS key log)")
	fs.StringVar(&tlsOpt.max, "tls-max", "", "client: the highest TLS version (1.2)")
	fs.StringVar(&tlsOpt.suite, "tls-suite", "", "client: the only TLS 1.2 cipher suite offered (Go's name)")
	fs.BoolVar(&tlsOpt.resume, "tls-resume", false, "client: tls scenario on two connections sharing a session cache")
	fs.DurationVar(&kaMinTime, "keepalive-min-time", 0, "server: keepalive EnforcementPolicy.MinTime (default: grpc-go's, 5 min)")
	fs.BoolVar(&kaPermit, "keepalive-permit-without-stream", false, "server: keepalive EnforcementPolicy.PermitWithoutStream")
	h2cMode := fs.Bool("h2c", false, "server: serve through net/http with x/net/http2/h2c (HTTP/1.1 Upgrade: h2c or prior knowledge); no TLS")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "server":
		if *h2cMode {
			serveH2C(*addr)
		} else {
			serve(*addr)
		}
	case "client":
		f, err := os.Create(*logPath)
		if err != nil {
			panic(err)
		}
		log := &logger{f: f}
		switch *scenario {
		case "midjoin":
			midjoin(*target, log, *marker)
		case "deadlines":
			deadlines(*target, log)
		case "streams":
			streams(*target, log, *messages)
		case "tls":
			tlsScenario(*target, log)
		default:
			panic("unknown scenario " + *scenario)
		}
		f.Close()
	}
}
