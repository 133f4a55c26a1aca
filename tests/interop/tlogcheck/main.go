// Command tlogcheck verifies release-lineage's audit checkpoints and proofs with Go's own
// transparency-log packages (golang.org/x/mod/sumdb/note and sumdb/tlog), code the project did
// not write. It reads one JSON request on stdin and exits 0 when everything holds, 1 otherwise.
//
// Built offline in GOPATH mode against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o tlogcheck main.go
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	TlogProof string `json:"tlog_proof"`
	Record    string `json:"record"` // base64 of the record the leaf hashes: the event's 32-byte hash
}

type consistency struct {
	OldCheckpoint string   `json:"old_checkpoint"`
	Proof         []string `json:"proof"`
}

type request struct {
	LogKey      string        `json:"log_vkey"`
	WitnessKeys []string      `json:"witness_vkeys"`
	Checkpoint  string        `json:"checkpoint"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
}

type tree struct {
	origin string
	size   int64
	root   tlog.Hash
	text   string
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fail("request: %v", err)
	}
	verifiers, logName := keys(req)
	head := open(req.Checkpoint, verifiers, logName, req.WitnessKeys)
	fmt.Printf("ok checkpoint %s size %d signed by %s\n", head.origin, head.size, logName)
	for _, inc := range req.Inclusion {
		index, proof, embedded := parseTlogProof(inc.TlogProof)
		if open(embedded, verifiers, logName, nil).text != head.text {
			fail("tlog proof for index %d is against another checkpoint", index)
		}
		record, err := base64.StdEncoding.DecodeString(inc.Record)
		if err != nil {
			fail("record: %v", err)
		}
		if err := tlog.CheckRecord(proof, head.size, head.root, index, tlog.RecordHash(record)); err != nil {
			fail("inclusion of record %d: %v", index, err)
		}
		fmt.Printf("ok record %d included in tree %d\n", index, head.size)
	}
	for _, c := range req.Consistency {
		old := open(c.OldCheckpoint, verifiers, logName, nil)
		var proof tlog.TreeProof
		for _, h := range c.Proof {
			proof = append(proof, decodeHash(h))
		}
		if err := tlog.CheckTree(proof, head.size, head.root, old.size, old.root); err != nil {
			fail("consistency of tree %d with tree %d: %v", old.size, head.size, err)
		}
		fmt.Printf("ok tree %d extends tree %d\n", head.size, old.size)
	}
}

func keys(req request) (note.Verifiers, string) {
	var list []note.Verifier
	for _, vkey := range append([]string{req.LogKey}, req.WitnessKeys...) {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			fail("verifier key %q: %v", vkey, err)
		}
		list = append(list, v)
	}
	return note.VerifierList(list...), list[0].Name()
}

// open checks the note's signatures with note.Open and requires the log's (and every required witness's).
func open(msg string, verifiers note.Verifiers, logName string, witnesses []string) tree {
	n, err := note.Open([]byte(msg), verifiers)
	if err != nil {
		fail("signed note: %v", err)
	}
	signed := map[string]bool{}
	for _, sig := range n.Sigs {
		signed[sig.Name] = true
	}
	if !signed[logName] {
		fail("signed note: no signature by %s", logName)
	}
	for _, w := range witnesses {
		name := strings.SplitN(w, "+", 2)[0]
		if !signed[name] {
			fail("signed note: no cosignature by witness %s", name)
		}
		fmt.Printf("ok cosigned by %s\n", name)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != logName {
		fail("checkpoint: want origin %s, size and root lines, got %q", logName, n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint: bad size %q", lines[1])
	}
	return tree{origin: lines[0], size: size, root: decodeHash(lines[2]), text: n.Text}
}

// parseTlogProof reads a c2sp.org/tlog-proof@v1: header, optional extra line, index, hashes, blank line, note.
func parseTlogProof(text string) (int64, tlog.RecordProof, string) {
	head, embedded, found := strings.Cut(text, "\n\n")
	lines := strings.Split(head, "\n")
	if !found || lines[0] != "c2sp.org/tlog-proof@v1" {
		fail("not a c2sp.org/tlog-proof@v1")
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		fail("tlog proof: no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		fail("tlog proof: %v", err)
	}
	var proof tlog.RecordProof
	for _, line := range lines[1:] {
		proof = append(proof, decodeHash(line))
	}
	return index, proof, embedded
}

func decodeHash(b64 string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(b64)
	var h tlog.Hash
	if err != nil || len(raw) != len(h) {
		fail("hash %q is not a base64 SHA-256 hash", b64)
	}
	copy(h[:], raw)
	return h
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}
