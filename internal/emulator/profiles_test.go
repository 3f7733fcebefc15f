package emulator

import (
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
)

// TestSDKInferenceProfiles lists and gets the system-defined inference
// profiles with the official control-plane client: the ones the model
// table gives the region's geography and global, paged.
func TestSDKInferenceProfiles(t *testing.T) {
	rn := start(t, Options{})
	c := bedrock.New(bedrock.Options{Region: "ap-northeast-1", BaseEndpoint: aws.String(rn.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	var want []string
	for _, m := range DefaultModels() {
		for _, geo := range m.Profiles {
			if geo == GeoAPAC || geo == GeoJP || geo == GeoGlobal {
				want = append(want, geo+"."+m.ID)
			}
		}
	}
	var got []string
	pages := 0
	p := bedrock.NewListInferenceProfilesPaginator(c, &bedrock.ListInferenceProfilesInput{MaxResults: aws.Int32(7)})
	for p.HasMorePages() {
		out, err := p.NextPage(bg())
		if err != nil {
			t.Fatalf("ListInferenceProfiles: %v", err)
		}
		pages++
		for _, s := range out.InferenceProfileSummaries {
			got = append(got, *s.InferenceProfileId)
			if s.Type != bedrocktypes.InferenceProfileTypeSystemDefined || s.Status != bedrocktypes.InferenceProfileStatusActive ||
				len(s.Models) != 1 || *s.InferenceProfileArn != "arn:aws:bedrock:ap-northeast-1:123456789012:inference-profile/"+*s.InferenceProfileId {
				t.Errorf("summary %+v", s)
			}
		}
	}
	if !slices.Equal(got, want) || pages != (len(want)+6)/7 {
		t.Errorf("%d pages of profiles %v, want %d pages of %v", pages, got, (len(want)+6)/7, want)
	}
	for _, id := range []string{"jp.anthropic.claude-sonnet-4-6", "arn:aws:bedrock:ap-northeast-1:123456789012:inference-profile/global.anthropic.claude-opus-4-7"} {
		out, err := c.GetInferenceProfile(bg(), &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(id)})
		if err != nil {
			t.Fatalf("GetInferenceProfile(%s): %v", id, err)
		}
		if *out.InferenceProfileArn == "" || len(out.Models) != 1 {
			t.Errorf("GetInferenceProfile(%s) = %+v", id, out)
		}
	}
	for _, id := range []string{"eu.anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6", "jp.anthropic.nope"} {
		_, err := c.GetInferenceProfile(bg(), &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(id)})
		if nf := (*bedrocktypes.ResourceNotFoundException)(nil); !errors.As(err, &nf) {
			t.Errorf("GetInferenceProfile(%s): %v, want ResourceNotFoundException", id, err)
		}
	}
	out, err := c.ListInferenceProfiles(bg(), &bedrock.ListInferenceProfilesInput{TypeEquals: bedrocktypes.InferenceProfileTypeApplication})
	if err != nil || len(out.InferenceProfileSummaries) != 0 {
		t.Errorf("application profiles: %v, %v; want none", out, err)
	}
}
