// Command verify checks opskit's transparency-log files with Go's own
// golang.org/x/mod/sumdb/note and sumdb/tlog packages, independently of opskit.
//
// Usage:
//
//	verify -vkey VKEY -checkpoint FILE [-cosigner VKEY]... [-proof FILE.tlog-proof]
//	       [-consistency FILE -old-checkpoint FILE]
//
// It prints one "ok ..." line per check and exits 1 at the first failure.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// cosigner verifies C2SP tlog-cosignature/v1 signatures (type 0x04), which
// x/mod/sumdb/note does not know: timestamp (8 bytes) || Ed25519 signature over
// "cosignature/v1\ntime T\n" || note text.
type cosigner struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", ts)), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func newCosigner(vkey string) (*cosigner, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed cosigner vkey")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		return nil, errors.New("not a cosignature/v1 vkey")
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	id := binary.BigEndian.Uint32(h[:4])
	if fmt.Sprintf("%08x", id) != parts[1] {
		return nil, errors.New("cosigner key id mismatch")
	}
	return &cosigner{parts[0], id, ed25519.PublicKey(raw[1:])}, nil
}

type tree struct {
	origin string
	size   int64
	root   tlog.Hash
}

// openCheckpoint verifies a checkpoint note and parses its body.
func openCheckpoint(msg []byte, verifiers note.Verifiers) (*note.Note, tree, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return nil, tree{}, err
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, tree{}, errors.New("checkpoint body too short")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return nil, tree{}, err
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, tree{}, err
	}
	return n, tree{lines[0], size, root}, nil
}

func parseHashes(lines []string) ([]tlog.Hash, error) {
	var out []tlog.Hash
	for _, l := range lines {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	vkey := flag.String("vkey", "", "the log's verifier key")
	cpFile := flag.String("checkpoint", "", "a checkpoint note")
	proofFile := flag.String("proof", "", "a c2sp.org/tlog-proof@v1 file")
	consFile := flag.String("consistency", "", "a tlog-witness add-checkpoint body")
	oldFile := flag.String("old-checkpoint", "", "the checkpoint the consistency proof starts from")
	var cosigners listFlag
	flag.Var(&cosigners, "cosigner", "a witness cosigner vkey (repeatable)")
	flag.Parse()

	logKey, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	verifiers := []note.Verifier{logKey}
	for _, c := range cosigners {
		v, err := newCosigner(c)
		if err != nil {
			fail("cosigner: %v", err)
		}
		verifiers = append(verifiers, v)
	}
	list := note.VerifierList(verifiers...)

	if *cpFile != "" {
		msg, err := os.ReadFile(*cpFile)
		if err != nil {
			fail("%v", err)
		}
		n, t, err := openCheckpoint(msg, list)
		if err != nil {
			fail("checkpoint: %v", err)
		}
		fmt.Printf("ok checkpoint %s %d\n", t.origin, t.size)
		for _, s := range n.Sigs {
			fmt.Printf("ok signature %s+%08x\n", s.Name, s.Hash)
		}
	}

	if *proofFile != "" {
		data, err := os.ReadFile(*proofFile)
		if err != nil {
			fail("%v", err)
		}
		head, cp, ok := bytes.Cut(data, []byte("\n\n"))
		if !ok {
			fail("proof: no blank line")
		}
		lines := strings.Split(string(head), "\n")
		if lines[0] != "c2sp.org/tlog-proof@v1" {
			fail("proof: bad header")
		}
		lines = lines[1:]
		var extra []byte
		if strings.HasPrefix(lines[0], "extra ") {
			if extra, err = base64.StdEncoding.DecodeString(lines[0][6:]); err != nil {
				fail("proof: extra: %v", err)
			}
			lines = lines[1:]
		}
		index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
		if err != nil || !strings.HasPrefix(lines[0], "index ") {
			fail("proof: bad index line")
		}
		hashes, err := parseHashes(lines[1:])
		if err != nil {
			fail("proof: %v", err)
		}
		_, t, err := openCheckpoint(cp, list)
		if err != nil {
			fail("proof checkpoint: %v", err)
		}
		leaf := tlog.RecordHash(extra)
		if err := tlog.CheckRecord(tlog.RecordProof(hashes), t.size, t.root, index, leaf); err != nil {
			fail("inclusion: %v", err)
		}
		fmt.Printf("ok inclusion %d in %d\n", index, t.size)
	}

	if *consFile != "" {
		data, err := os.ReadFile(*consFile)
		if err != nil {
			fail("%v", err)
		}
		oldData, err := os.ReadFile(*oldFile)
		if err != nil {
			fail("%v", err)
		}
		_, old, err := openCheckpoint(oldData, list)
		if err != nil {
			fail("old checkpoint: %v", err)
		}
		head, cp, ok := bytes.Cut(data, []byte("\n\n"))
		if !ok {
			fail("consistency: no blank line")
		}
		lines := strings.Split(string(head), "\n")
		oldSize, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "old "), 10, 64)
		if err != nil || oldSize != old.size {
			fail("consistency: old size %q does not match the old checkpoint", lines[0])
		}
		hashes, err := parseHashes(lines[1:])
		if err != nil {
			fail("consistency: %v", err)
		}
		_, t, err := openCheckpoint(cp, list)
		if err != nil {
			fail("consistency checkpoint: %v", err)
		}
		if t.origin != old.origin {
			fail("consistency: origin changed")
		}
		if err := tlog.CheckTree(tlog.TreeProof(hashes), t.size, t.root, old.size, old.root); err != nil {
			fail("consistency: %v", err)
		}
		fmt.Printf("ok consistency %d -> %d\n", old.size, t.size)
	}
}
