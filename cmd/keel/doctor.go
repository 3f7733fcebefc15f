package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/doctor"
)

func init() {
	register(command{name: "doctor", summary: "check credentials, clock, models, access, quotas and the network path before a call fails", run: runDoctor})
}

const doctorUsage = `Usage: keel doctor [--model ID ...] [--region R] [--endpoint URL | --emulator [--scenario FILE]] [--config FILE] [--probe] [--json] [--strict]

Checks a setup before it fails, each check pass, warn, fail or not-run with
what was seen and the fix (docs/doctor.md): credentials and their source and
expiry, a Bedrock API key shadowing them, STS; the clock against the
endpoint's; each model's profile prefix, existence in the region and
lifecycle; with --probe, access to each model (CountTokens, free); quotas
from Service Quotas against keel's configuration; TCP keep-alive, proxies,
DNS and TLS; SDK settings that fight keel. Credentials are looked for for at
most 5 s, then each check gets at most 5 s: doctor ends within about 10 s.

Exit status: 0 nothing failed, 1 a check failed (or, with --strict, warned),
2 usage error.

Flags:`

type doctorFlags struct {
	models                           multiFlag
	region, endpoint, scenario       string
	configFile                       string
	seed                             int64
	emulated, probe, jsonOut, strict bool
}

func runDoctor(args []string, stdout, stderr io.Writer) int {
	var f doctorFlags
	fs := flag.NewFlagSet("keel doctor", flag.ContinueOnError)
	fs.Var(&f.models, "model", "a model id, inference profile id or ARN `ID` to check (repeatable; default: the --config routes' targets)")
	fs.StringVar(&f.region, "region", "", "`REGION` to check (default: the config file's, else the AWS configuration's, else us-east-1)")
	fs.StringVar(&f.endpoint, "endpoint", "", "a Bedrock-compatible base `URL` to check instead of AWS's endpoint")
	fs.BoolVar(&f.emulated, "emulator", false, "start keel emulate in-process and check against it (no AWS account needed)")
	fs.StringVar(&f.scenario, "scenario", "", "with --emulator: a scenario `FILE` (clock_skew, deny, quotas)")
	fs.Int64Var(&f.seed, "seed", 1, "with --emulator: the emulator's seed `N`")
	fs.StringVar(&f.configFile, "config", "", "a keel YAML configuration `FILE` (quotas, retries, routes)")
	fs.BoolVar(&f.probe, "probe", false, "check access to each model with a CountTokens call (free)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the checks as JSON (docs/doctor.md)")
	fs.BoolVar(&f.strict, "strict", false, "exit 1 on a warning too")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), doctorUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if code, ok := checkDoctorFlags(&f, fs, stderr); !ok {
		return code
	}
	c := &config.Config{}
	if f.configFile != "" {
		var err error
		if c, err = config.Load(f.configFile); err != nil {
			fmt.Fprintf(stderr, "keel doctor: %v\n", err)
			return 2
		}
	}
	if f.region == "" {
		f.region = c.Region
	}
	if f.endpoint == "" && !f.emulated {
		f.endpoint = c.Endpoint
	}
	if len(f.models) == 0 {
		f.models = routeModels(c)
	}
	setup := &doctor.Setup{Region: f.region, Endpoint: f.endpoint, Models: f.models, Probe: f.probe, Config: c}
	// Every check is bounded; this bounds the whole run too, with room for
	// the output.
	ctx, cancel := context.WithTimeout(context.Background(), doctor.DefaultCredentialsTimeout+doctor.DefaultCheckTimeout+doctorGrace)
	defer cancel()
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(sdkLogger(nil))}
	if f.region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(f.region))
	}
	if f.emulated {
		s, err := buildEmulator(emulateConfig{scenario: f.scenario, seed: f.seed, region: "us-east-1"})
		if err != nil {
			fmt.Fprintf(stderr, "keel doctor: starting the emulator: %v\n", err)
			return 2
		}
		rn, err := s.Listen("127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "keel doctor: starting the emulator: %v\n", err)
			return 2
		}
		defer rn.Close()
		setup.Endpoint, setup.Emulated = rn.URL, true
		// The emulator takes any credentials: never look for real ones.
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("KEELFAKEACCESSKEY", "keel-fake-secret", "")))
	}
	if setup.Endpoint != "" {
		// Not AWS: the instance metadata service has nothing for it.
		loadOpts = append(loadOpts, awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := loadAWSConfig(ctx, loadOpts...)
	if err != nil {
		fmt.Fprintf(stderr, "keel doctor: loading AWS configuration: %v\n", err)
		return 2
	}
	setup.AWS = cfg
	rep := doctor.Run(ctx, setup)
	if f.jsonOut {
		err = rep.WriteJSON(stdout, f.strict)
	} else {
		err = rep.WriteText(stdout, f.strict)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel doctor: %v\n", err)
		return 1
	}
	return rep.ExitCode(f.strict)
}

// doctorGrace is the time the whole run is given beyond the checks' own
// bounds, for loading the configuration and starting an emulator.
const doctorGrace = 2 * time.Second

// checkDoctorFlags rejects flags that contradict each other; ok is false
// with the exit code when it did.
func checkDoctorFlags(f *doctorFlags, fs *flag.FlagSet, stderr io.Writer) (code int, ok bool) {
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "keel doctor: unexpected argument %q; name models with --model\n", fs.Arg(0))
	case f.emulated && f.endpoint != "":
		fmt.Fprintln(stderr, "keel doctor: --emulator and --endpoint both name what to check; choose one")
	case f.scenario != "" && !f.emulated:
		fmt.Fprintln(stderr, "keel doctor: --scenario needs --emulator")
	case f.region != "" && !config.ValidRegion(f.region):
		fmt.Fprintf(stderr, "keel doctor: --region: %q is not a region name such as us-west-2\n", f.region)
	case f.endpoint != "" && !httpURL(f.endpoint):
		fmt.Fprintf(stderr, "keel doctor: --endpoint: %q is not an http(s) URL such as http://127.0.0.1:4000\n", f.endpoint)
	case slices.Contains(f.models, ""):
		fmt.Fprintln(stderr, "keel doctor: --model: an empty model id")
	default:
		return 0, true
	}
	return 2, false
}

// httpURL reports whether s is an http or https URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// routeModels lists the models the configuration's routes call, in order,
// once each.
func routeModels(c *config.Config) []string {
	var out []string
	for _, r := range c.Routes {
		for _, t := range r.Targets {
			if !slices.Contains(out, t.Model) {
				out = append(out, t.Model)
			}
		}
	}
	return out
}
