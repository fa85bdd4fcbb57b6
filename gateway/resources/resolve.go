package resources

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/eventgate/eventgate/gateway/channel"
)

// ErrUnresolvable is wrapped by Resolve's errors: the destination has no usable address.
var ErrUnresolvable = errors.New("unresolvable destination")

// ErrSecretRef is wrapped by ReadSecret's errors for a name or key that is empty or could escape the
// secrets directory.
var ErrSecretRef = errors.New("invalid secret reference")

// Resolver turns destinations into channels or URLs. Its fields are read-only once in use; then it is
// safe for concurrent use.
type Resolver struct {
	// AddressBook maps "KIND/NAMESPACE/NAME" or "NAMESPACE/NAME" to a URL, for references to things
	// outside the gateway. The kind-qualified entry wins.
	AddressBook map[string]string
	// IngressURL is the gateway's own ingress base URL, like "http://127.0.0.1:8080". Empty means the
	// in-cluster Knative addresses.
	IngressURL string
	// Lookup, when set, gives the address of a reference that is neither a channel nor a broker and
	// is not in the address book (the Kubernetes-native mode reads it from the API server); false:
	// the in-cluster fallback. It must be safe for concurrent use.
	Lookup func(Reference) (Address, bool)
}

// Address is an addressable's address (Knative's status.address): its URL and the PEM CA
// certificates it announces for it ("" for none).
type Address struct {
	URL     string
	CACerts string
}

// Target is where a resolved destination sends events: exactly one of Channel and URL is set.
type Target struct {
	Channel *channel.Ref // a channel of this gateway: publish directly, no HTTP hop
	URL     string
	CACerts string // with URL: the destination's PEM CA certificates, trusted besides the system's
}

// String returns "channel NAMESPACE/NAME", "broker NAMESPACE/NAME" or the URL.
func (t Target) String() string {
	if t.Channel != nil {
		if name, ok := t.Channel.Broker(); ok {
			return "broker " + t.Channel.Namespace + "/" + name
		}
		return "channel " + t.Channel.String()
	}
	return t.URL
}

// Resolve resolves d: a reference to a channel kind → the channel; to a Broker → the channel that
// backs it (channel.BrokerRef); a URI → itself (absolute http or https only); any other reference →
// AddressBook, then Lookup, falling back to http://NAME.NAMESPACE.svc.cluster.local, with a relative
// URI beside the reference resolved against that address (RFC 3986, as Knative does). Errors wrap
// ErrUnresolvable. It does not check that a referenced channel exists (Set.Validate does).
func (r *Resolver) Resolve(d Destination) (Target, error) {
	switch {
	case d.Ref != nil:
	case d.URI != "":
		if err := checkURL(d.URI); err != nil {
			return Target{}, fmt.Errorf("%w: %v", ErrUnresolvable, err)
		}
		return Target{URL: d.URI, CACerts: d.CACerts}, nil
	default:
		return Target{}, fmt.Errorf("%w: neither uri nor ref is set", ErrUnresolvable)
	}
	ref := *d.Ref
	if ref.Name == "" || ref.Namespace == "" {
		return Target{}, fmt.Errorf("%w: %s has no name or namespace", ErrUnresolvable, ref)
	}
	if ref.IsChannel() || ref.IsBroker() {
		if d.URI != "" {
			return Target{}, fmt.Errorf("%w: uri %q beside a reference to %s", ErrUnresolvable, truncate(d.URI, 80), ref)
		}
		c := ref.ChannelRef()
		return Target{Channel: &c}, nil
	}
	base, err := r.address(ref)
	if err != nil {
		return Target{}, err
	}
	// As in Knative, the destination's CACerts are added to those its addressable announces.
	t := Target{URL: base.URL, CACerts: joinPEM(base.CACerts, d.CACerts)}
	if d.URI == "" {
		return t, nil
	}
	if err := checkRelativeURL(d.URI); err != nil {
		return Target{}, fmt.Errorf("%w: %v", ErrUnresolvable, err)
	}
	b, _ := url.Parse(base.URL) // checked by address
	rel, _ := url.Parse(d.URI)
	t.URL = b.ResolveReference(rel).String()
	return t, nil
}

// joinPEM puts two PEM texts together, either of which may be empty.
func joinPEM(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return strings.TrimRight(a, "\n") + "\n" + b
}

// address gives the address of a reference that is neither a channel nor a broker.
func (r *Resolver) address(ref Reference) (Address, error) {
	for _, key := range []string{ref.Kind + "/" + ref.Namespace + "/" + ref.Name, ref.Namespace + "/" + ref.Name} {
		if u, ok := r.AddressBook[key]; ok {
			if err := checkURL(u); err != nil {
				return Address{}, fmt.Errorf("%w: address book entry %s: %v", ErrUnresolvable, key, err)
			}
			return Address{URL: u}, nil
		}
	}
	if r.Lookup != nil {
		if a, ok := r.Lookup(ref); ok {
			if err := checkURL(a.URL); err != nil {
				return Address{}, fmt.Errorf("%w: %s: address %v", ErrUnresolvable, ref, err)
			}
			if a.CACerts != "" {
				if _, err := ParseCACerts(a.CACerts); err != nil {
					return Address{}, fmt.Errorf("%w: %s: address CACerts: %v", ErrUnresolvable, ref, err)
				}
			}
			return a, nil
		}
	}
	if !dnsLabelRE.MatchString(ref.Name) || !dnsLabelRE.MatchString(ref.Namespace) {
		return Address{}, fmt.Errorf("%w: %s is not in the address book and has no in-cluster address", ErrUnresolvable, ref)
	}
	return Address{URL: "http://" + ref.Name + "." + ref.Namespace + ".svc.cluster.local"}, nil
}

// ChannelAddress returns the URL events are posted to for channel c: IngressURL + "/NAMESPACE/NAME",
// or the Knative in-cluster address http://NAME-kn-channel.NAMESPACE.svc.cluster.local when IngressURL
// is empty.
func (r *Resolver) ChannelAddress(c *Channel) string {
	if r.IngressURL == "" {
		return "http://" + c.Name + "-kn-channel." + c.Namespace + ".svc.cluster.local"
	}
	return strings.TrimRight(r.IngressURL, "/") + "/" + c.Namespace + "/" + c.Name
}

// BrokerAddress returns the URL events are posted to for broker b: IngressURL + "/NAMESPACE/NAME",
// or Knative's broker ingress address
// http://broker-ingress.knative-eventing.svc.cluster.local/NAMESPACE/NAME when IngressURL is empty.
func (r *Resolver) BrokerAddress(b *Broker) string {
	base := strings.TrimRight(r.IngressURL, "/")
	if base == "" {
		base = "http://" + channel.BrokerIngressHost
	}
	return base + "/" + b.Namespace + "/" + b.Name
}

// WebhookAddress returns the URL a webhook source (GitHubSource) receives on, or "" for other sources.
func (r *Resolver) WebhookAddress(s *Source) string {
	p := s.WebhookPath()
	if p == "" {
		return ""
	}
	base := strings.TrimRight(r.IngressURL, "/")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	return base + p
}

// ReadSecret reads key of Secret ref.Name from dir, laid out as Kubernetes mounts Secrets:
// DIR/NAME/KEY. The bytes are returned exactly as stored (no newline is trimmed). A name or key that
// is empty, contains "/", "\" or "..", or is "." is rejected with ErrSecretRef before touching the file
// system; a missing file wraps fs.ErrNotExist. Symbolic links (as Kubernetes mounts use) are followed.
func ReadSecret(dir string, ref SecretKeyRef) ([]byte, error) {
	if err := checkSecretPart("name", ref.Name); err != nil {
		return nil, err
	}
	if err := checkSecretPart("key", ref.Key); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, ref.Name, ref.Key))
	if err != nil {
		return nil, fmt.Errorf("secret %s key %s: %w", ref.Name, ref.Key, err)
	}
	return b, nil
}

func checkSecretPart(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s missing", ErrSecretRef, what)
	case s == "." || strings.Contains(s, "..") || strings.ContainsAny(s, "/\\\x00"):
		return fmt.Errorf("%w: %s %q must not contain '/', '\\' or '..'", ErrSecretRef, what, truncate(s, 80))
	}
	return nil
}
