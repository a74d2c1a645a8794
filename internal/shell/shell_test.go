package shell

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// What Join writes, sh splits back into the same words.
func TestJoinRoundTripsThroughSh(t *testing.T) {
	cases := [][]string{
		{"plain"},
		{""},
		{"two words", "it's", `"dq"`, "$HOME", "`id`", `back\slash`, "semi;colon|pipe&", "new\nline", "-dash", "*", "~"},
	}
	for _, words := range cases {
		out, err := exec.CommandContext(t.Context(), "sh", "-c", `printf '%s\0' `+Join(words...)).Output()
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if !slices.Equal(got, words) {
			t.Errorf("sh read %q, want %q", got, words)
		}
	}
}
