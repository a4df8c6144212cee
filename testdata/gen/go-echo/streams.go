// The streams scenario (scenario_streams in py_echo.py): long streams and the Gauge service's
// float and double fields on one connection, every message logged as protobuf JSON by
// golang/protobuf's jsonpb (lowerCamel names; float fields through encoding/json with 32 bits:
// the shortest decimal that reads back as the same float32; NaN and the infinities as strings).

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	pb "goecho/pb"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// gaugeSpecial: the first readings of every sequence, as in py_echo.py (GAUGE_SPECIAL).
var gaugeSpecial = []float64{
	0.3333333333333333, 0.1, -0.6666666666666666, 0.9265066385269165, 3.141592653589793,
	2.718281828459045, -273.15, 1e-07, -1.5e-10, 123456.789, 16777217.0, 6.02214076e+23,
	1e+21, -9.999999e-05, 3.4028234663852886e+38, 1.1754943508222875e-38, 1.401298464324817e-45,
	100.0, 0.5, -1234.5678, math.NaN(), math.Inf(1), math.Inf(-1),
}

var gaugeScales = []float64{1e-06, 1e-05, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0}

// gaugeRng: the 64-bit LCG of py_echo.py (GaugeRng).
type gaugeRng struct{ s uint64 }

func (g *gaugeRng) value() float64 {
	g.s = g.s*6364136223846793005 + 1442695040888963407
	u := float64(g.s>>11) / 9007199254740992.0
	return (u - 0.5) * gaugeScales[(g.s>>3)%13]
}

// gaugeReadings: readings 0..n-1 of the sequence seed (gauge_readings in py_echo.py).
func gaugeReadings(seed uint64, n int, unit string, scale float64) []*pb.Reading {
	g := &gaugeRng{seed}
	k := scale
	if k == 0 {
		k = 1
	}
	var out []*pb.Reading
	for i := 0; i < n; i++ {
		var x float64
		if i < len(gaugeSpecial) {
			x = gaugeSpecial[i]
		} else {
			x = g.value()
		}
		var series []float64
		if i == 0 {
			series = []float64{math.Copysign(0, -1), 0.0, 1.401298464324817e-45, -0.3333333333333333}
		} else {
			for j := 0; j < i%4; j++ {
				series = append(series, g.value())
			}
		}
		r := &pb.Reading{Value: float32(x * k), Exact: x * k, Index: int32(i), Unit: unit}
		for _, v := range series {
			r.Series = append(r.Series, float32(v*k))
		}
		out = append(out, r)
	}
	return out
}

// msgLogger: one line per message, in the order the client handed it to grpc-go or received it.
type msgLogger struct {
	mu sync.Mutex
	f  *os.File
	m  jsonpb.Marshaler
}

func (l *msgLogger) msg(callID int, method, direction string, index int, m proto.Message) {
	s, err := l.m.MarshalToString(m)
	if err != nil {
		panic(err)
	}
	b, err := json.Marshal(map[string]interface{}{
		"call_id": callID, "method": method, "direction": direction, "index": index,
		"time": now(), "json": json.RawMessage(s),
	})
	if err != nil {
		panic(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Write(append(b, '\n'))
}

type streamsCall struct {
	svc, method string
	echo        []*pb.EchoRequest
	sample      *pb.SampleRequest
	readings    []*pb.Reading
	lockstep    bool
}

// streamsRun makes one call of the streams scenario and logs it and its messages.
func streamsRun(c client, g pb.GaugeClient, log *logger, ml *msgLogger, callID int, s streamsCall) {
	path := "/grpctap.test." + s.svc + "/" + s.method
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-call-id", strconv.Itoa(callID))
	start := now()
	var mu sync.Mutex // sent is counted by the sending goroutine of a Bidi
	sent, got := 0, 0
	var p interface{}
	var hdr, tr metadata.MD
	var err error
	req := func(i int, m proto.Message) {
		ml.msg(callID, path, "request", i, m)
		mu.Lock()
		sent++
		mu.Unlock()
	}
	echoResp := func(r *pb.EchoReply) {
		ml.msg(callID, path, "response", got, r)
		got++
		p = r.Peer
	}
	gaugeResp := func(m proto.Message) {
		ml.msg(callID, path, "response", got, m)
		got++
	}
	switch s.svc + "." + s.method {
	case "Echo.Unary":
		req(0, s.echo[0])
		var r *pb.EchoReply
		if r, err = c.echo.Unary(ctx, s.echo[0]); err == nil {
			echoResp(r)
		}
	case "Echo.ServerStream":
		req(0, s.echo[0])
		var st pb.Echo_ServerStreamClient
		if st, err = c.echo.ServerStream(ctx, s.echo[0]); err == nil {
			for {
				var r *pb.EchoReply
				if r, err = st.Recv(); err != nil {
					break
				}
				echoResp(r)
			}
		}
	case "Echo.ClientStream":
		var st pb.Echo_ClientStreamClient
		if st, err = c.echo.ClientStream(ctx); err == nil {
			for i, r := range s.echo {
				req(i, r)
				if st.Send(r) != nil {
					break
				}
			}
			var r *pb.EchoReply
			if r, err = st.CloseAndRecv(); err == nil {
				echoResp(r)
			}
		}
	case "Echo.Bidi":
		var st pb.Echo_BidiClient
		if st, err = c.echo.Bidi(ctx); err == nil {
			if s.lockstep {
				for i, r := range s.echo {
					req(i, r)
					if err = st.Send(r); err != nil {
						break
					}
					n := int(r.ReplyCount)
					if n < 1 {
						n = 1
					}
					for j := 0; j < n; j++ {
						var rep *pb.EchoReply
						if rep, err = st.Recv(); err != nil {
							break
						}
						echoResp(rep)
					}
					if err != nil {
						break
					}
				}
				if err == nil {
					st.CloseSend()
				}
			} else {
				go func() {
					for i, r := range s.echo {
						req(i, r)
						if st.Send(r) != nil {
							return
						}
					}
					st.CloseSend()
				}()
			}
			for err == nil {
				var r *pb.EchoReply
				if r, err = st.Recv(); err != nil {
					break
				}
				echoResp(r)
			}
		}
	case "Gauge.Latest":
		req(0, s.sample)
		var r *pb.Reading
		if r, err = g.Latest(ctx, s.sample, grpc.Header(&hdr), grpc.Trailer(&tr)); err == nil {
			gaugeResp(r)
		}
		p = peerFrom(hdr, tr)
	case "Gauge.Sample":
		req(0, s.sample)
		var st pb.Gauge_SampleClient
		if st, err = g.Sample(ctx, s.sample); err == nil {
			for {
				var r *pb.Reading
				if r, err = st.Recv(); err != nil {
					break
				}
				gaugeResp(r)
			}
			hdr, _ = st.Header()
			p = peerFrom(hdr, st.Trailer())
		}
	case "Gauge.Report":
		var st pb.Gauge_ReportClient
		if st, err = g.Report(ctx); err == nil {
			for i, r := range s.readings {
				req(i, r)
				if st.Send(r) != nil {
					break
				}
			}
			var r *pb.Summary
			if r, err = st.CloseAndRecv(); err == nil {
				gaugeResp(r)
			}
			hdr, _ = st.Header()
			p = peerFrom(hdr, st.Trailer())
		}
	default:
		panic(path)
	}
	if err == io.EOF {
		err = nil
	}
	stt := status.Convert(err)
	mu.Lock()
	n := sent
	mu.Unlock()
	log.write(map[string]interface{}{
		"conn": 0, "call_id": callID, "method": path, "req_msgs": n, "resp_msgs": got,
		"status": codeNames[stt.Code()], "message": stt.Message(), "timeout_s": nil,
		"cancelled": false, "client_peer": p, "start": start, "end": now(),
	})
}

// streams: the calls of scenario_streams in py_echo.py, in the same order, on one connection.
func streams(target string, log *logger, messages string) {
	f, err := os.Create(messages)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ml := &msgLogger{f: f}
	c, cc := dial(target)
	defer cc.Close()
	g := pb.NewGaugeClient(cc)
	echoN := func(n int, f func(i int) *pb.EchoRequest) []*pb.EchoRequest {
		var out []*pb.EchoRequest
		for i := 0; i < n; i++ {
			out = append(out, f(i))
		}
		return out
	}
	E := func(r *pb.EchoRequest) []*pb.EchoRequest { return []*pb.EchoRequest{r} }
	calls := []streamsCall{
		{svc: "Echo", method: "Unary", echo: E(&pb.EchoRequest{Message: "hello", ReplySize: 4})},
		{svc: "Gauge", method: "Latest", sample: &pb.SampleRequest{Count: 3, Seed: 42, Unit: "m"}},
		{svc: "Echo", method: "Bidi", lockstep: true, echo: echoN(200, func(i int) *pb.EchoRequest {
			return &pb.EchoRequest{Message: fmt.Sprintf("b%d", i), ReplyCount: 1}
		})},
		{svc: "Echo", method: "Bidi", echo: echoN(200, func(i int) *pb.EchoRequest {
			return &pb.EchoRequest{Message: fmt.Sprintf("d%d", i), ReplyCount: int32(1 + i%2)}
		})},
		{svc: "Echo", method: "ServerStream", echo: E(&pb.EchoRequest{Message: "s120", ReplyCount: 120})},
		{svc: "Echo", method: "ServerStream", echo: E(&pb.EchoRequest{Message: "s1000", ReplyCount: 1000})},
		{svc: "Echo", method: "ClientStream", echo: echoN(250, func(i int) *pb.EchoRequest {
			return &pb.EchoRequest{Message: fmt.Sprintf("c%d", i)}
		})},
		{svc: "Gauge", method: "Sample", sample: &pb.SampleRequest{Count: 50, Seed: 42, Unit: "\u00b0C"}},
		{svc: "Gauge", method: "Report", readings: gaugeReadings(7, 40, "kPa", 0)},
		{svc: "Echo", method: "ServerStream", echo: E(&pb.EchoRequest{Message: "s70", ReplyCount: 70, StatusCode: 14, StatusMessage: "stream broke"})},
		{svc: "Gauge", method: "Latest", sample: &pb.SampleRequest{Count: -1, Seed: 42}},
		{svc: "Gauge", method: "Latest", sample: &pb.SampleRequest{Count: 30, Seed: 42, Unit: "V", Scale: 0.1}},
		{svc: "Echo", method: "Unary", echo: E(&pb.EchoRequest{Message: "bye"})},
	}
	for i, s := range calls {
		streamsRun(c, g, log, ml, i+1, s)
	}
	time.Sleep(200 * time.Millisecond)
}
