package core

// ParseAppID reads an app id in its one canonical form, the way the
// registry prints it: decimal digits with no sign and no leading zero,
// from 1 to 2^63-1. Every edge parses ids from paths, JIDs and frames
// with it, so that "/01" or "+1" never names app 1 on one edge when
// another refuses it.
func ParseAppID(s string) (AppID, bool) {
	if len(s) == 0 || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	var n uint64
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 { // 19 digits fit in a uint64, not always in an int64
		return 0, false
	}
	return AppID(n), true
}
