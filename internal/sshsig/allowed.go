package sshsig

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrUntrusted means a signature is good but made by a key the trust file
// does not name (for the namespace, at this time).
var ErrUntrusted = errors.New("signed by a key that is not trusted")

// Signer is one trusted key: a line of an allowed_signers file, or a public
// key file.
type Signer struct {
	// Principals are who the key stands for: the allowed_signers line's
	// principals, or a public key file's comment.
	Principals []string
	Key        ssh.PublicKey
	// Namespaces limit what the key may sign (namespaces="..."); empty means any.
	Namespaces []string
	// ValidAfter and ValidBefore bound when the key is trusted; zero means no bound.
	ValidAfter, ValidBefore time.Time
	// Where is the file and line the key came from.
	Where string
}

// Identity names the signer for people: its principals, or its fingerprint.
func (s Signer) Identity() string {
	if len(s.Principals) == 0 {
		return ssh.FingerprintSHA256(s.Key)
	}
	return strings.Join(s.Principals, ",")
}

// Trust is the set of keys a verifier accepts.
type Trust []Signer

// LoadTrust reads a file of trusted keys: an allowed_signers file (the
// format `ssh-keygen -Y verify -f` reads: "principals [options] keytype
// base64 [comment]" a line), an OpenSSH public key file ("keytype base64
// comment", as NAME.pub), or a PEM public key of older sealpack releases.
func LoadTrust(path string) (Trust, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trusted keys: %w", err)
	}
	t, err := ParseTrust(data, path)
	if err != nil {
		return nil, err
	}
	if len(t) == 0 {
		return nil, fmt.Errorf("%s: no keys (want an allowed_signers file or a public key)", path)
	}
	return t, nil
}

// ParseTrust parses what LoadTrust reads; name is the file's name for errors.
func ParseTrust(data []byte, name string) (Trust, error) {
	if block, _ := pem.Decode(data); block != nil && block.Type == "PUBLIC KEY" {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		pub, err := ssh.NewPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return Trust{{Key: pub, Where: name}}, nil
	}
	var out Trust
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, i+1, err)
		}
		s.Where = fmt.Sprintf("%s:%d", name, i+1)
		out = append(out, s)
	}
	return out, nil
}

// parseLine reads one allowed_signers line, or one public key line.
func parseLine(line string) (Signer, error) {
	fields, err := splitFields(line)
	if err != nil {
		return Signer{}, err
	}
	// A public key file's line starts with the key type.
	if key, comment, ok := keyAt(fields, 0); ok {
		s := Signer{Key: key}
		if comment != "" {
			s.Principals = []string{comment}
		}
		return s, nil
	}
	s := Signer{Principals: strings.Split(fields[0], ",")}
	rest := fields[1:]
	if _, _, ok := keyAt(rest, 1); ok {
		if err := s.options(rest[0]); err != nil {
			return Signer{}, err
		}
		rest = rest[1:]
	}
	key, _, ok := keyAt(rest, 0)
	if !ok {
		return Signer{}, errors.New(`want "principals [options] keytype base64-key" (an allowed_signers line) or "keytype base64-key comment" (a public key)`)
	}
	s.Key = key
	return s, nil
}

// keyAt parses fields[i] as a key type followed by the base64 key, and
// returns the rest of the line as the comment.
func keyAt(fields []string, i int) (ssh.PublicKey, string, bool) {
	if len(fields) < i+2 {
		return nil, "", false
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(fields[i] + " " + fields[i+1]))
	if err != nil || key.Type() != fields[i] {
		return nil, "", false
	}
	return key, strings.Join(fields[i+2:], " "), true
}

// options reads an allowed_signers options field.
func (s *Signer) options(field string) error {
	opts, err := splitOptions(field)
	if err != nil {
		return err
	}
	for _, opt := range opts {
		name, val, _ := strings.Cut(opt, "=")
		val = strings.Trim(val, `"`)
		switch strings.ToLower(name) {
		case "namespaces":
			s.Namespaces = strings.Split(val, ",")
		case "valid-after", "valid-before":
			t, err := parseTime(val)
			if err != nil {
				return fmt.Errorf("option %s: %w", name, err)
			}
			if strings.EqualFold(name, "valid-after") {
				s.ValidAfter = t
			} else {
				s.ValidBefore = t
			}
		case "cert-authority":
			return errors.New("option cert-authority: certificates are not supported here; check with ssh-keygen -Y verify")
		default:
			return fmt.Errorf("unknown option %q", name)
		}
	}
	return nil
}

// splitFields splits on blanks, keeping double-quoted runs whole.
func splitFields(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ' ' || r == '\t') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

// splitOptions splits an options field on commas outside double quotes.
func splitOptions(field string) ([]string, error) {
	var out []string
	start, quoted := 0, false
	for i, r := range field {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, field[start:i])
			start = i + 1
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote in the options")
	}
	return append(out, field[start:]), nil
}

// parseTime reads ssh-keygen's YYYYMMDD[HHMM[SS]][Z]: local time unless Z.
func parseTime(v string) (time.Time, error) {
	loc := time.Local
	if s, ok := strings.CutSuffix(v, "Z"); ok {
		v, loc = s, time.UTC
	}
	for _, layout := range []string{"20060102", "200601021504", "20060102150405"} {
		if len(v) == len(layout) {
			return time.ParseInLocation(layout, v, loc)
		}
	}
	return time.Time{}, fmt.Errorf("%q: want YYYYMMDD[HHMM[SS]][Z]", v)
}

// Find returns the trusted signer for key in namespace at time now.
func (t Trust) Find(key ssh.PublicKey, namespace string, now time.Time) (Signer, error) {
	var why []string
	for _, s := range t {
		if string(s.Key.Marshal()) != string(key.Marshal()) {
			continue
		}
		switch {
		case len(s.Namespaces) > 0 && !slices.Contains(s.Namespaces, namespace):
			why = append(why, fmt.Sprintf("%s allows it only for %s", s.Where, strings.Join(s.Namespaces, ",")))
		case !s.ValidAfter.IsZero() && now.Before(s.ValidAfter):
			why = append(why, fmt.Sprintf("%s trusts it only after %s", s.Where, s.ValidAfter))
		case !s.ValidBefore.IsZero() && !now.Before(s.ValidBefore):
			why = append(why, fmt.Sprintf("%s trusted it only before %s", s.Where, s.ValidBefore))
		default:
			return s, nil
		}
	}
	if len(why) > 0 {
		return Signer{}, fmt.Errorf("%w: %s %s (%s)", ErrUntrusted, key.Type(), ssh.FingerprintSHA256(key), strings.Join(why, "; "))
	}
	return Signer{}, fmt.Errorf("%w: %s %s is in none of the trusted keys", ErrUntrusted, key.Type(), ssh.FingerprintSHA256(key))
}
