package redrive

// Config is the redrive section of the configuration (koanf tags are its keys).
type Config struct {
	// StateDir is where each job's definition and progress is kept, one JSON file per job, so that
	// a restarted gateway resumes (durable channels) or reports (in memory) the jobs it had not
	// finished. Empty (the default): jobs live in the process only and a restart forgets them.
	StateDir string `koanf:"stateDir"`
}

// DefaultConfig returns the defaults: no state directory.
func DefaultConfig() Config { return Config{} }

// Validate checks the settings; keys are relative to the section. Any directory will do (it is
// created on the first job), so there is nothing to check yet.
func (c Config) Validate() error { return nil }
