package rollout

import (
	"errors"
	"strings"
)

// Command turns a pre-command written as one string, as DeployEx's
// current.json and beamctl's -pre-command flag hold them, into an argv:
// "eval EXPR" becomes ["eval", "EXPR"] with EXPR as written, and any other
// string is split into words the way a POSIX shell would (quotes and
// backslashes), without a shell: no variables, globs or pipes.
func Command(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "eval" {
		return nil, errors.New(`eval needs an expression, as "eval MyApp.Release.migrate()"`)
	}
	if rest, ok := strings.CutPrefix(s, "eval"); ok && rest != "" && strings.ContainsRune(" \t\n", rune(rest[0])) {
		if expr := strings.TrimSpace(rest); expr != "" {
			return []string{"eval", expr}, nil
		}
		return nil, errors.New(`eval needs an expression, as "eval MyApp.Release.migrate()"`)
	}
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated " quote`)
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash ends the command")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("the command is empty")
	}
	return words, nil
}
