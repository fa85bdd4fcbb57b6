package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "eventgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsLoadAndValidate(t *testing.T) {
	c, warnings, err := Load(Sources{})
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	want := Default()
	if c.Ingress.Address != want.Ingress.Address || c.Ingress.MaxBodyBytes != 1<<20 ||
		c.Dispatch.BackoffDelay != 200*time.Millisecond || c.Shutdown.Grace != want.Shutdown.Grace ||
		!c.Dispatch.Adaptive || c.Dispatch.MinInFlight != 1 || c.Dispatch.MaxInFlight != 64 {
		t.Fatalf("defaults not loaded: %+v", c)
	}
}

func TestLayersLaterWins(t *testing.T) {
	file := writeFile(t, `
ingress:
  address: ":18080"
  maxBodyBytes: 2048
dispatch:
  backoffDelay: 1s
  retry: 7
kafka:
  brokers: [a:1]
addressBook:
  default/demo: http://127.0.0.1:8081
`)
	c, warnings, err := Load(Sources{
		File: file,
		Environ: []string{
			"EVENTGATE_KAFKA__BROKERS=127.0.0.1:9092,127.0.0.1:9093",
			"EVENTGATE_DISPATCH__RETRY=2",
			"EVENTGATE_DISPATCH__ADAPTIVE=false",
			"EVENTGATE_DISPATCH__MININFLIGHT=4",
			"EVENTGATE_INGRESS__MAXBODYBYTES=4096",
			"EVENTGATE_TEST_KAFKA=127.0.0.1:9092",
			"HOME=/root",
		},
		Set: map[string]string{"dispatch.retry": "9", "log.level": "debug"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ingress.Address != ":18080" {
		t.Errorf("file did not override ingress.address: %q", c.Ingress.Address)
	}
	if c.Ingress.MaxBodyBytes != 4096 {
		t.Errorf("env did not override the camel-case key ingress.maxBodyBytes: %d", c.Ingress.MaxBodyBytes)
	}
	if got := strings.Join(c.Kafka.Brokers, ","); got != "127.0.0.1:9092,127.0.0.1:9093" {
		t.Errorf("kafka.brokers from env = %q", got)
	}
	if c.Dispatch.Retry != 9 {
		t.Errorf("flag did not win: retry = %d", c.Dispatch.Retry)
	}
	if c.Dispatch.Adaptive {
		t.Errorf("env did not turn dispatch.adaptive off")
	}
	if c.Dispatch.MinInFlight != 4 {
		t.Errorf("env dispatch.minInFlight = %d, want 4", c.Dispatch.MinInFlight)
	}
	if c.Dispatch.BackoffDelay != time.Second {
		t.Errorf("file duration: %v", c.Dispatch.BackoffDelay)
	}
	if c.AddressBook["default/demo"] != "http://127.0.0.1:8081" {
		t.Errorf("addressBook: %v", c.AddressBook)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "EVENTGATE_TEST_KAFKA") {
		t.Errorf("warnings = %v, want one naming EVENTGATE_TEST_KAFKA", warnings)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		file string
		set  map[string]string
		want []string
	}{
		{"unknown file key", "ingress:\n  adress: \":1\"\n", nil, []string{"ingress.adress: unknown key"}},
		{"unknown flag key", "", map[string]string{"dispatch.retries": "1"}, []string{"--set dispatch.retries: unknown key"}},
		{"bad values all reported", `
ingress: {address: "nope", maxBodyBytes: 0}
dispatch: {backoffPolicy: fibonacci, maxInFlight: 0}
channels: {defaultProvisioner: kafka}
log: {format: xml}
`, nil, []string{"ingress.address", "ingress.maxBodyBytes", "dispatch.backoffPolicy", "dispatch.maxInFlight",
			"kafka.brokers: required", "log.format"}},
		{"bad broker and sasl", "kafka: {brokers: [\"nohost\"], sasl: {mechanism: GSSAPI}}\n", nil,
			[]string{"kafka.brokers[0]", "kafka.sasl.mechanism"}},
		{"min in flight not positive", "dispatch: {minInFlight: 0}\n", nil, []string{"dispatch.minInFlight: must be positive"}},
		{"min in flight above max", "dispatch: {minInFlight: 10, maxInFlight: 5}\n", nil,
			[]string{"dispatch.minInFlight: 10 is more than dispatch.maxInFlight 5"}},
		{"bad address book", "addressBook: {default/x: ftp://x}\n", nil, []string{"addressBook.default/x"}},
		{"zero session timeout", "kafka: {sessionTimeout: 0s}\n", nil, []string{"kafka.sessionTimeout"}},
		{"bad compression", "kafka:\n  compression: bogus\n", nil,
			[]string{`kafka.compression: "bogus" is not one of gzip, lz4, none, snappy, zstd`}},
		{"kafka client bounds", "kafka: {fetchMaxBytes: 0, fetchMaxPartitionBytes: -1, maxBufferedPerPartition: 0}\n", nil,
			[]string{"kafka.fetchMaxBytes", "kafka.fetchMaxPartitionBytes", "kafka.maxBufferedPerPartition"}},
		{"sasl without username", "", map[string]string{"kafka.sasl.mechanism": "PLAIN"},
			[]string{"kafka.sasl.username: required when kafka.sasl.mechanism is set"}},
		{"negative backoff", "dispatch: {backoffMax: -1s}\n", nil, []string{"dispatch.backoffMax"}},
		{"inmemory and ingress", "inmemory: {partitions: 0}\ningress: {tls: {certFile: c.pem}}\n", nil,
			[]string{"inmemory.partitions: must be positive", "ingress.tls.certFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Sources{Set: tt.set}
			if tt.file != "" {
				src.File = writeFile(t, tt.file)
			}
			_, _, err := Load(src)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The Kafka client settings are keys like any other: from the environment and the file.
func TestKafkaClientSettingsFromEnvAndFile(t *testing.T) {
	file := writeFile(t, "kafka:\n  maxBufferedPerPartition: 512\n  fetchMaxPartitionBytes: 65536\n")
	c, warnings, err := Load(Sources{File: file, Environ: []string{
		"EVENTGATE_KAFKA__COMPRESSION=zstd",
		"EVENTGATE_KAFKA__FETCHMAXBYTES=1048576",
		"EVENTGATE_KAFKA__SASL__USERNAME=eventgate",
	}})
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Load: %v, warnings %v", err, warnings)
	}
	k := c.Kafka
	if k.Compression != "zstd" || k.FetchMaxBytes != 1<<20 || k.MaxBufferedPerPartition != 512 ||
		k.FetchMaxPartitionBytes != 64<<10 || k.SASL.Username != "eventgate" {
		t.Errorf("kafka = %+v", k)
	}
}

func TestIngressURL(t *testing.T) {
	c := Default()
	if got := c.IngressURL(); got != "http://127.0.0.1:8080" {
		t.Errorf("IngressURL = %q", got)
	}
	c.Ingress.ExternalURL = "http://eventgate.events.svc.cluster.local/"
	if got := c.IngressURL(); got != "http://eventgate.events.svc.cluster.local" {
		t.Errorf("IngressURL = %q", got)
	}
}

// The README's configuration table lists every key of Default with its environment variable and its
// default, so the documentation cannot drift from the code: each row's default, loaded as a
// configuration, gives Default back.
func TestREADMEConfigurationTable(t *testing.T) {
	rows := readmeConfigRows(t)
	k, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]any{}
	for _, key := range k.Keys() {
		row, ok := rows[key]
		if !ok {
			t.Errorf("README configuration table: no row for %s", key)
			continue
		}
		delete(rows, key)
		if env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__")); key != "addressBook" && row.env != "`"+env+"`" {
			t.Errorf("README row %s: environment %s, want `%s`", key, row.env, env)
		}
		if lit, ok := strings.CutPrefix(row.def, "`"); ok {
			documented[key] = strings.TrimSuffix(lit, "`")
		} else if v := k.Get(key); !reflect.ValueOf(v).IsZero() && key != "addressBook" {
			t.Errorf("README row %s: default %q, want `%v`", key, row.def, v)
		}
	}
	for key := range rows {
		t.Errorf("README configuration table: %s is not a configuration key", key)
	}

	// Read the documented defaults the way a configuration file is read, then compare key by key.
	rk := koanf.New(".")
	if err := rk.Load(confmap.Provider(documented, "."), nil); err != nil {
		t.Fatal(err)
	}
	parsed, err := decode(rk)
	if err != nil {
		t.Fatalf("README defaults: %v", err)
	}
	pk := koanf.New(".")
	if err := pk.Load(structs.Provider(parsed, "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	for key, lit := range documented {
		if got, want := pk.Get(key), k.Get(key); !reflect.DeepEqual(got, want) {
			t.Errorf("README row %s: default `%v` reads as %v, Default() has %v", key, lit, got, want)
		}
	}
}

type readmeRow struct{ env, def string }

// readmeConfigRows returns the rows of the table in README.md's Configuration section, by key.
func readmeConfigRows(t *testing.T) map[string]readmeRow {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]readmeRow{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Fatalf("README configuration row with %d cells, want 4 (key, environment, default, meaning): %s", len(cells), line)
		}
		key := strings.Trim(strings.TrimSpace(cells[0]), "`")
		rows[key] = readmeRow{env: strings.TrimSpace(cells[1]), def: strings.TrimSpace(cells[2])}
	}
	return rows
}
