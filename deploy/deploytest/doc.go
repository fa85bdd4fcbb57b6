// Package deploytest checks eventgate's deployment artefacts for real, without a container engine or a
// cluster: the Helm chart (rendered by a real Helm and decoded strictly into the Kubernetes API types),
// docker-compose.yml (loaded with compose-go), the Prometheus configuration, the Grafana dashboard
// (every query against a live /metrics scrape of the gateway) and the Dockerfile's build line.
//
// The chart tests need a Helm binary named by EVENTGATE_HELM and skip without one; scripts/chart-test
// builds Helm from the Go module proxy and sets it. EVENTGATE_KUBE_VERSION picks the Kubernetes
// version rendered for (default 1.33.0). Everything else runs on a plain `go test`.
//
// The package has no non-test code to speak of; it exists so that `go test ./...` runs these checks.
package deploytest
