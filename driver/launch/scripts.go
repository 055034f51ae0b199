package launch

import (
	"regexp"
	"strings"
)

// A shape is what the driver knows about one kind of release script: the
// exact cookie arguments it takes out, and the lines that mention the
// cookie without ever putting it on a command line. Every other mention of
// the cookie, in any spelling, refuses the release.
type shape struct {
	remove  []string
	rewrite []rewrite
	allowed []string // whole lines, trimmed
}

type rewrite struct {
	re   *regexp.Regexp
	with string
}

// plain is any other script: env.sh, hooks, extensions. Nothing is removed
// and nothing that mentions the cookie is allowed.
var plain = &shape{}

// mixBin is mix's bin/NAME (Elixir 1.14 and later). It passes --cookie to
// every VM it starts. It also reads releases/COOKIE into RELEASE_COOKIE when
// that is unset, as the driver leaves it: the build-time cookie lands in the
// script's environment, never on a command line once --cookie is gone, and
// the node uses the one in HOME.
var mixBin = &shape{
	remove: []string{` --cookie "$RELEASE_COOKIE"`},
	allowed: []string{
		`RELEASE_COOKIE="${RELEASE_COOKIE:-"$(cat "$RELEASE_ROOT/releases/COOKIE")"}"`,
		`export RELEASE_COOKIE`,
	},
}

// elixirCLI is the elixir script that mix copies to releases/VSN/elixir. It
// turns a --cookie it is given into -setcookie; once bin/NAME no longer
// gives one, these lines are its usage text and a branch never taken.
var elixirCLI = &shape{allowed: []string{
	`--cookie COOKIE              Sets a cookie for this distributed node`,
	`--cookie)`,
	`erl_set "-setcookie"`,
}}

// relxBin is relx 4's extended start script, bin/NAME and bin/NAME-VSN. It
// reads the cookie into $COOKIE (from $RELX_COOKIE, a -setcookie in vm.args
// or $HOME/.erlang.cookie) and hands it to erlexec, nodetool and erl_call.
// install_upgrade.escript takes it inside its first argument, which cannot
// lose it: those commands (install, upgrade, versions...) are disabled; the
// driver does hot upgrades itself.
var relxBin = &shape{
	remove: []string{
		` -setcookie "${COOKIE}"`,
		` -setcookie "$COOKIE"`,
		` -setcookie ${COOKIE}`,
		` -c "${COOKIE}"`,
	},
	rewrite: []rewrite{{
		re: regexp.MustCompile(`exec "\$BINDIR/escript" "\$ROOTDIR/bin/install_upgrade\.escript" \\\n([ \t]*)` +
			`(?:"\$COMMAND"|"versions") "\{'\$REL_NAME', \\"\$NAME_TYPE\\", '\$NAME', '\$COOKIE'\}" "\$@"`),
		with: `echo "install_upgrade.escript would get the cookie on its command line; the beam driver disabled it" >&2` +
			"\n${1}exit 1",
	}},
	allowed: []string{
		`if [ -z "$COOKIE" ]; then`,
		`# running with setcookie prevents a ~/.erlang.cookie from being created`,
		`# Do this before relx_get_nodename so we can use it and not create a ~/.erlang.cookie`,
		`if [ -n "$RELX_COOKIE" ]; then`,
		`COOKIE="$RELX_COOKIE"`,
		`COOKIE_ARG="$(grep '^-setcookie' "$VMARGS_PATH" || true)"`,
		`DEFAULT_COOKIE_FILE="$HOME/.erlang.cookie"`,
		`if [ -z "$COOKIE_ARG" ]; then`,
		`if [ -f "$DEFAULT_COOKIE_FILE" ]; then`,
		`COOKIE="$(cat "$DEFAULT_COOKIE_FILE")"`,
		`# Extract cookie name from COOKIE_ARG`,
		`COOKIE="$(echo "$COOKIE_ARG" | awk '{print $2}')"`,
	},
}

// apply removes the known cookie arguments. Line numbers do not change.
func (sh *shape) apply(b []byte) []byte {
	s := string(b)
	for _, a := range sh.remove {
		s = strings.ReplaceAll(s, a, "")
	}
	for _, r := range sh.rewrite {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return []byte(s)
}

func (sh *shape) allows(l *logical) bool {
	if l.quoted {
		return false
	}
	t := strings.TrimSpace(l.raw)
	for _, a := range sh.allowed {
		if t == a {
			return true
		}
	}
	return false
}

// The references to the cookie, found in a line without its quotes and
// backslashes, so that -set"cookie" or --cookie=\"$X\" match as well.
var (
	flagRes = []struct {
		re   *regexp.Regexp
		kind string
	}{
		{regexp.MustCompile(`(?i)-setcookie`), "a -setcookie flag"},
		{regexp.MustCompile(`(?i)--cookie`), "a --cookie flag"},
		{regexp.MustCompile(`(?i)set_cookie`), "a set_cookie call"},
		{regexp.MustCompile(`(?i)erlang\.cookie`), "the .erlang.cookie file"},
		{regexp.MustCompile(`releases/+COOKIE`), "the releases/COOKIE file"},
	}
	erlCallRe = regexp.MustCompile(`(?i)erl_call|erl_rpc`)
	dashCRe   = regexp.MustCompile(`(?:^|[\s;&|(])(-c)(?:$|[^A-Za-z0-9_-])`)
	expandRe  = regexp.MustCompile(`\$\{?[#!]?([A-Za-z0-9_]*(?i:cookie)[A-Za-z0-9_]*)`)
	assignRe  = regexp.MustCompile(`(?:^|[\s;&|(!{])([A-Za-z_][A-Za-z0-9_]*)\+?=(\S*)`)
	unquote   = strings.NewReplacer(`"`, "", `'`, "", `\`, "")
)

// taint is the variables that hold the cookie (or a path to it), and those
// that hold erl_call, across all the scripts of a release: env.sh, hooks
// and extensions are sourced into the start script.
type taint struct {
	cookie, call map[string]bool
	re           *regexp.Regexp // cookie as whole words
}

func newTaint() *taint {
	t := &taint{cookie: map[string]bool{"COOKIE": true, "RELEASE_COOKIE": true, "RELX_COOKIE": true}, call: map[string]bool{}}
	t.compile()
	return t
}

func (t *taint) compile() {
	names := make([]string, 0, len(t.cookie))
	for n := range t.cookie {
		names = append(names, n)
	}
	t.re = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])(` + strings.Join(names, "|") + `)(?:$|[^A-Za-z0-9_])`)
}

// learn finds, across all the scripts of a release, the variables that
// hold erl_call and those that hold the cookie. It takes time in proportion
// to the scripts' length, whatever the order of their assignments.
//
// A variable holds erl_call when it is assigned (other than from a command
// substitution) a value that names erl_call or expands such a variable.
// A variable holds the cookie when it is assigned on a line that refers to
// the cookie and that the script's shape allows: any other such line
// refuses the release anyway.
func (t *taint) learn(list []*script) {
	users := map[string][]string{}   // users[v]: assigned from an expansion of v
	var queue []string               // assigned erl_call itself
	allowed := map[string][]string{} // allowed lines, trimmed: what they assign
	for _, s := range list {
		for _, l := range s.lines {
			ms := assignRe.FindAllStringSubmatch(l.norm, -1)
			if len(ms) == 0 {
				continue
			}
			names := make([]string, len(ms))
			for i, m := range ms {
				name, val := m[1], m[2]
				names[i] = name
				switch {
				case strings.HasPrefix(val, "$("):
				case erlCallRe.MatchString(val):
					queue = append(queue, name)
				default:
					for _, v := range expanded(val) {
						users[v] = append(users[v], name)
					}
				}
			}
			if s.shape.allows(l) {
				allowed[strings.TrimSpace(l.norm)] = names
			}
		}
	}
	for len(queue) > 0 {
		n := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if !t.call[n] {
			t.call[n] = true
			queue = append(queue, users[n]...)
		}
	}
	// The allowed lines are few and fixed, and so are the variables they
	// assign: this ends after a few rounds.
	for changed := true; changed; {
		changed = false
		for norm, names := range allowed {
			if _, _, ok := t.ref(norm); !ok {
				continue
			}
			for _, n := range names {
				if !t.cookie[n] {
					t.cookie[n], changed = true, true
				}
			}
		}
		if changed {
			t.compile()
		}
	}
}

// callsErl reports whether s names erl_call or expands a variable that
// holds it.
func (t *taint) callsErl(s string) bool {
	if erlCallRe.MatchString(s) {
		return true
	}
	for _, v := range expanded(s) {
		if t.call[v] {
			return true
		}
	}
	return false
}

// expanded returns the variables that s expands, as the shell reads them:
// $NAME (the longest name), ${NAME...}, ${#NAME} and ${!NAME}.
func expanded(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '{' {
			j++
			if j < len(s) && (s[j] == '#' || s[j] == '!') {
				j++
			}
		}
		k := j
		for k < len(s) && (s[k] == '_' || 'A' <= s[k] && s[k] <= 'Z' || 'a' <= s[k] && s[k] <= 'z' || k > j && '0' <= s[k] && s[k] <= '9') {
			k++
		}
		if k > j {
			out = append(out, s[j:k])
		}
		i = k - 1
	}
	return out
}

// ref finds the first reference to the cookie in a normalized line: its
// offset, what kind it is and the token that matched.
func (t *taint) ref(s string) (int, string, bool) {
	for _, f := range flagRes {
		if loc := f.re.FindStringIndex(s); loc != nil {
			return loc[0], f.kind + ` ("` + s[loc[0]:loc[1]] + `")`, true
		}
	}
	if t.callsErl(s) {
		if m := dashCRe.FindStringSubmatchIndex(s); m != nil {
			return m[2], `a -c flag given to erl_call ("-c")`, true
		}
	}
	if m := expandRe.FindStringSubmatchIndex(s); m != nil {
		return m[0], "an expansion of the cookie variable " + s[m[2]:m[3]], true
	}
	if m := t.re.FindStringSubmatchIndex(s); m != nil {
		return m[2], "the cookie variable " + s[m[2]:m[3]], true
	}
	return 0, "", false
}

// finding is a reference to the cookie that the shape does not allow.
type finding struct {
	line int
	what string
}

func (t *taint) scan(lines []*logical, sh *shape) *finding {
	for _, l := range lines {
		at, what, ok := t.ref(l.norm)
		if !ok || sh.allows(l) {
			continue
		}
		line := l.first
		for i, s := range l.starts {
			if at >= s {
				line = l.first + i
			}
		}
		return &finding{line, what}
	}
	return nil
}

// A logical line is physical lines joined where one ends in a backslash.
type logical struct {
	raw    string // without the backslash-newlines
	norm   string // raw without quotes and backslashes
	first  int    // number of its first physical line
	starts []int  // where each physical line begins in norm
	quoted bool   // it begins inside a quoted string
}

func logicalLines(text string) []*logical {
	var (
		out       []*logical
		cur       *logical
		raw, norm strings.Builder // of cur, which may run over many lines
		lx        lexer
	)
	end := func() {
		cur.raw, cur.norm = raw.String(), norm.String()
		raw.Reset()
		norm.Reset()
		out = append(out, cur)
		cur = nil
	}
	for i, p := range strings.Split(text, "\n") {
		quoted := lx.line(p)
		if cur == nil {
			cur = &logical{first: i + 1, quoted: quoted}
		}
		cont := strings.HasSuffix(p, `\`) && (len(p)-len(strings.TrimRight(p, `\`)))%2 == 1
		if cont {
			p = p[:len(p)-1]
		}
		cur.starts = append(cur.starts, norm.Len())
		raw.WriteString(p)
		norm.WriteString(unquote.Replace(p))
		if !cont {
			end()
		}
	}
	if cur != nil {
		end()
	}
	return out
}

// lexer follows quotes, comments and here-documents from line to line, just
// well enough to tell whether a line begins inside a quoted string. It is
// used only to withhold the allowlist, never to skip a line.
type lexer struct {
	quote   byte
	pending []string // here-documents declared on this line
	body    []string // here-documents being read
}

var heredocRe = regexp.MustCompile(`^<<(-?)[ \t]*["']?([A-Za-z0-9_]+)`)

func (lx *lexer) line(s string) bool {
	if len(lx.body) > 0 {
		if strings.TrimLeft(strings.TrimSuffix(s, "\r"), "\t") == lx.body[0] {
			lx.body = lx.body[1:]
		}
		return false
	}
	started := lx.quote != 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case lx.quote == '\'':
			if c == '\'' {
				lx.quote = 0
			}
		case lx.quote == '"':
			if c == '\\' {
				i++
			} else if c == '"' {
				lx.quote = 0
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			lx.quote = c
		case c == '#' && (i == 0 || strings.IndexByte(" \t;&|(", s[i-1]) >= 0):
			i = len(s)
		case c == '<' && !strings.HasPrefix(s[i:], "<<<"):
			if m := heredocRe.FindStringSubmatch(s[i:]); m != nil {
				lx.pending = append(lx.pending, m[2])
				i += len(m[0]) - 1
			}
		}
	}
	if lx.quote == 0 && !strings.HasSuffix(s, `\`) {
		lx.body, lx.pending = lx.pending, nil
	}
	return started
}
