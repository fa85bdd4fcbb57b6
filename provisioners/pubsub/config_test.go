package pubsub

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidateNamesKeys(t *testing.T) {
	c := DefaultConfig()
	c.Project = "Not A Project"
	c.EmulatorHost = "nohostport"
	c.TopicTemplate = "{{.Nope}}"
	c.SubscriptionTemplate = "{{"
	c.Partitions = 0
	c.AckDeadline = 5 * time.Second
	c.MaxOutstandingMessages = 0
	err := c.Validate()
	for _, key := range []string{"project", "emulatorHost", "topicTemplate", "subscriptionTemplate", "partitions",
		"ackDeadline", "maxOutstandingMessages"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate does not name %s: %v", key, err)
		}
	}
}

func TestWithEnvironment(t *testing.T) {
	env := map[string]string{EnvProject: "from-env", EnvEmulatorHost: "127.0.0.1:8085"}
	got := DefaultConfig().WithEnvironment(func(k string) string { return env[k] })
	if got.Project != "from-env" || got.EmulatorHost != "127.0.0.1:8085" {
		t.Errorf("got project %q, emulator %q", got.Project, got.EmulatorHost)
	}
	c := DefaultConfig()
	c.Project = "configured"
	if got := c.WithEnvironment(func(k string) string { return env[k] }); got.Project != "configured" {
		t.Errorf("the environment overrode configuration: %q", got.Project)
	}
}

func TestNewNeedsProject(t *testing.T) {
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New without a project: %v, want ErrInvalidConfig", err)
	}
}
