package testservers

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"sync"
)

var notesMu sync.Mutex

// NoteSecret appends a secret a test used, in each of its forms, to
// $ARITMA_SECRETS_FILE, which scripts/e2e.sh scans the test output for and
// then deletes. Without the variable it does nothing.
func NoteSecret(secret string) {
	path := os.Getenv("ARITMA_SECRETS_FILE")
	if path == "" || secret == "" {
		return
	}
	notesMu.Lock()
	defer notesMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	for _, form := range SecretForms(secret) {
		_, _ = f.WriteString(form + "\n")
	}
}

// SecretForms are the ways a secret can appear in a log or an answer: as
// is, URL-encoded (a form body), JSON-escaped (a PEM key in JSON), and
// base64-encoded at each of the three alignments it can have inside a longer
// base64 text (a Basic header encodes "id:secret"). A scan that looks for all
// of them finds the secret however it was written.
//
// A multi-line secret (a PEM key) is also looked for line by line: each of
// its lines is unique to it, whatever became of the whitespace around it.
func SecretForms(secret string) []string {
	forms := []string{secret, url.QueryEscape(secret)}
	if strings.Contains(strings.TrimSpace(secret), "\n") {
		for _, line := range strings.Split(secret, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				forms = append(forms, line)
			}
		}
	}
	if quoted, err := json.Marshal(secret); err == nil {
		forms = append(forms, strings.Trim(string(quoted), `"`))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		forms = append(forms, base64Cores(enc, secret)...)
	}
	seen := map[string]bool{}
	var unique []string
	for _, f := range forms {
		if len(f) >= 8 && !seen[f] { // shorter cores would match by chance
			seen[f] = true
			unique = append(unique, f)
		}
	}
	return unique
}

// base64Cores are the parts of secret's base64 encoding that do not depend
// on the bytes around it, for each alignment: the secret preceded by 0, 1
// or 2 bytes, less the characters those bytes and the end share.
func base64Cores(enc *base64.Encoding, secret string) []string {
	var cores []string
	for shift := 0; shift < 3; shift++ {
		encoded := enc.EncodeToString(append(make([]byte, shift), secret...))
		lead := []int{0, 2, 3}[shift]                                               // characters that carry the padding bytes
		tail := []int{0, 2, 3}[(shift+len(secret))%3] + strings.Count(encoded, "=") // the last group, if partial
		if len(encoded) > lead+tail {
			cores = append(cores, encoded[lead:len(encoded)-tail])
		}
	}
	return cores
}
