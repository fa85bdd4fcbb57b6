package config

import "testing"

// TestPubSubProjectFromEnvironment: pubsub.project falls back to GOOGLE_CLOUD_PROJECT and
// pubsub.emulatorHost to PUBSUB_EMULATOR_HOST; EVENTGATE_PUBSUB__… wins over both.
func TestPubSubProjectFromEnvironment(t *testing.T) {
	c, _, err := Load(Sources{Environ: []string{"GOOGLE_CLOUD_PROJECT=from-google", "PUBSUB_EMULATOR_HOST=127.0.0.1:8085"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.PubSub.Project != "from-google" || c.PubSub.EmulatorHost != "127.0.0.1:8085" {
		t.Errorf("project %q, emulator %q", c.PubSub.Project, c.PubSub.EmulatorHost)
	}
	c, _, err = Load(Sources{Environ: []string{"GOOGLE_CLOUD_PROJECT=from-google", "EVENTGATE_PUBSUB__PROJECT=from-eventgate"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.PubSub.Project != "from-eventgate" {
		t.Errorf("project %q, want EVENTGATE_PUBSUB__PROJECT's", c.PubSub.Project)
	}
	if _, _, err := Load(Sources{Set: map[string]string{"channels.defaultProvisioner": "pubsub"}}); err == nil {
		t.Error("defaultProvisioner pubsub without a project was accepted")
	}
}
