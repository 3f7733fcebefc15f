package emulator

import (
	"cmp"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
)

// TestSDKServiceTiers: the tier a call names is served and reported on all
// four operations, and a tier the model does not offer, or no tier at all,
// is refused with the ValidationException keel's catalog explains.
func TestSDKServiceTiers(t *testing.T) {
	var planned []string
	opts := Options{Seed: testSeed, Planner: func(r fault.Request) fault.Plan {
		planned = append(planned, r.Tier)
		return fault.Plan{}
	}}
	rn := start(t, opts)
	c := client(rn, "us-west-2")
	body := anthropicJSON(50, reply.Message{Role: "user", Text: "Hi"})

	call := func(op, model string, tier types.ServiceTierType) (string, error) {
		var st *types.ServiceTier
		if tier != "" {
			st = &types.ServiceTier{Type: tier}
		}
		msgs := []types.Message{userMsg("Hi")}
		switch op {
		case OpConverse:
			out, err := c.Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs, ServiceTier: st})
			if err != nil {
				return "", err
			}
			if out.ServiceTier == nil {
				return "", nil
			}
			return string(out.ServiceTier.Type), nil
		case OpConverseStream:
			out, err := c.ConverseStream(bg(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: msgs, ServiceTier: st})
			if err != nil {
				return "", err
			}
			ev := readConverse(out)
			if ev.err != nil || ev.meta == nil {
				t.Fatalf("stream: err %v, metadata %v", ev.err, ev.meta)
			}
			if ev.meta.ServiceTier == nil {
				return "", nil
			}
			return string(ev.meta.ServiceTier.Type), nil
		case OpInvoke:
			out, err := c.InvokeModel(bg(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(model), Body: body, ServiceTier: tier})
			if err != nil {
				return "", err
			}
			return string(out.ServiceTier), nil
		default:
			out, err := c.InvokeModelWithResponseStream(bg(), &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(model), Body: body, ServiceTier: tier})
			if err != nil {
				return "", err
			}
			if ev := readInvoke(out); ev.err != nil {
				t.Fatalf("stream: %v", ev.err)
			}
			return string(out.ServiceTier), nil
		}
	}
	tests := []struct {
		name     string
		model    string
		tier     types.ServiceTierType
		reported string
		code     string // catalog entry of the refusal; "" for a served call
	}{
		{"no tier named, none reported", sonnet45US, "", "", ""},
		{"flex", sonnet45US, "flex", "flex", ""},
		{"priority", sonnet45US, "priority", "priority", ""},
		{"default named", haiku3, "default", "default", ""},
		{"flex on a default-only model", haiku3, "flex", "", catalog.CodeServiceTierUnsupported},
		{"reserved without a reservation", sonnet45US, "reserved", "", catalog.CodeServiceTierUnsupported},
		{"unknown tier", sonnet45US, "standard", "", catalog.CodeServiceTierUnknown},
	}
	for _, op := range []string{OpConverse, OpConverseStream, OpInvoke, OpInvokeStream} {
		for _, tt := range tests {
			t.Run(op+"/"+tt.name, func(t *testing.T) {
				planned = planned[:0]
				got, err := call(op, tt.model, tt.tier)
				if tt.code == "" {
					if err != nil {
						t.Fatalf("err = %v", err)
					}
					if got != tt.reported {
						t.Errorf("reported tier %q, want %q", got, tt.reported)
					}
					if want := cmp.Or(string(tt.tier), "default"); len(planned) != 1 || planned[0] != want {
						t.Errorf("planner saw tiers %q, want [%s]", planned, want)
					}
					return
				}
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
					t.Fatalf("err = %v, want a ValidationException", err)
				}
				if e := catalog.Refine(catalog.Must(catalog.CodeValidation), ae.ErrorMessage()); e.Code != tt.code {
					t.Errorf("catalog reads %q as %s, want %s", ae.ErrorMessage(), e.Code, tt.code)
				}
			})
		}
	}
}

// TestConverseTier reads serviceTier.type from Converse bodies, refusing a
// serviceTier without a string type.
func TestConverseTier(t *testing.T) {
	tests := []struct {
		name, body, tier string
		ok               bool
	}{
		{"absent", `{"messages":[]}`, "", true},
		{"null", `{"serviceTier":null}`, "", true},
		{"flex", `{"messages":[],"serviceTier":{"type":"flex"}}`, "flex", true},
		{"other keys kept apart", `{"serviceTier":{"other":1,"type":"priority"}}`, "priority", true},
		{"no type", `{"serviceTier":{}}`, "", false},
		{"bare string", `{"serviceTier":"flex"}`, "", false},
		{"type not a string", `{"serviceTier":{"type":3}}`, "", false},
		{"not JSON", `{"serviceTier":`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier, ok := converseTier([]byte(tt.body))
			if tier != tt.tier || ok != tt.ok {
				t.Errorf("converseTier(%s) = %q, %v; want %q, %v", tt.body, tier, ok, tt.tier, tt.ok)
			}
		})
	}
}
