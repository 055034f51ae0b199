package release

import (
	"fmt"
	"regexp"
)

// namePattern is what every name the driver takes from a release's files
// may be: a release or application name, a release version, an ERTS
// version. Each of them becomes one component of a path that root opens,
// so none may be empty, "." or "..", or hold a slash; and each goes into
// command lines and vm.args, so none may hold a space or a control
// character. Real names are far inside it: mix versions are SemVer,
// application names are atoms, ERTS versions are dotted numbers.
var namePattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_@~-]{0,127}$`)

// ValidName reports whether s can be a release name, application name,
// release version or ERTS version. It is the one check of such names, in
// the driver and the tools alike; call it every time a name is read from
// a file, not once when a tree is built.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// CheckName returns an error that says what is wrong when s, the what of
// the file file, is not a ValidName. It quotes at most MaxQuoted bytes of s.
func CheckName(file, what, s string) error {
	if ValidName(s) {
		return nil
	}
	return fmt.Errorf("%s: %s %q is not a valid name (a letter or digit, then letters, digits and . + _ @ ~ -, "+
		"at most 128): rebuild the release", file, what, Clip(s))
}
