package hostile

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// sdk returns the official Bedrock Runtime client, signing for region,
// pointed at s.
func sdk(s *Server, region string) *bedrockruntime.Client {
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           region,
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
		// The emulator's tests explain this (testHTTPClient): smithy-go
		// closes the request body while net/http may still call its
		// WriteTo, which a zero-latency server turns into a failed call.
		HTTPClient: &http.Client{Transport: readOnlyBody{s.Client().Transport}},
	})
}

type readOnlyBody struct{ base http.RoundTripper }

func (t readOnlyBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = struct{ io.ReadCloser }{r.Body} // hides WriteTo
	}
	return t.base.RoundTrip(r)
}

var hi = []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}

// TestSDK checks that the official SDK takes the OK replies for Bedrock's
// and fails on the broken ones, and that ByRegion routes its signed calls.
func TestSDK(t *testing.T) {
	onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
		east := Sequence(Options{Size: 1000}, Options{Mode: Truncate})
		west := Sequence(Options{Events: 7, EventSize: 500}, Options{Mode: Reset})
		s := start(ByRegion(map[string]http.Handler{"us-east-1": east, "us-west-2": west}))
		defer s.Close()
		ctx := t.Context()

		out, err := sdk(s, "us-east-1").Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("m"), Messages: hi})
		if err != nil {
			t.Fatal(err)
		}
		msg := out.Output.(*types.ConverseOutputMemberMessage).Value
		if text := msg.Content[0].(*types.ContentBlockMemberText).Value; len(text) < 800 || out.StopReason != types.StopReasonEndTurn {
			t.Errorf("Converse: %d bytes of text, stop reason %q", len(text), out.StopReason)
		}
		if _, err := sdk(s, "us-east-1").Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("m"), Messages: hi}); err == nil {
			t.Error("Converse of a truncated body: no error")
		}

		st, err := sdk(s, "us-west-2").ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String("m"), Messages: hi})
		if err != nil {
			t.Fatal(err)
		}
		var deltas int
		var usage *types.TokenUsage
		for ev := range st.GetStream().Events() {
			switch ev := ev.(type) {
			case *types.ConverseStreamOutputMemberContentBlockDelta:
				deltas++
			case *types.ConverseStreamOutputMemberMetadata:
				usage = ev.Value.Usage
			}
		}
		if err := errors.Join(st.GetStream().Err(), st.GetStream().Close()); err != nil || deltas != 7 || usage == nil {
			t.Errorf("ConverseStream: %d deltas, usage %v, error %v; want 7 and usage", deltas, usage, err)
		}
		if st, err := sdk(s, "us-west-2").ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String("m"), Messages: hi}); err == nil {
			for range st.GetStream().Events() {
			}
			err = st.GetStream().Err()
			st.GetStream().Close()
			if err == nil {
				t.Error("ConverseStream of a reset stream: no error")
			}
		}
		if east.Requests() != 2 || west.Requests() != 2 {
			t.Errorf("east saw %d calls, west %d; want 2 each", east.Requests(), west.Requests())
		}
	})
}
