package xmpp

import "fmt"

// lexState is where the scanner is in the XML grammar.
type lexState uint8

const (
	lexText      lexState = iota // character data (or the prolog)
	lexLT                        // just after '<'
	lexStartTag                  // in a start tag, outside attribute values
	lexAttr                      // in an attribute value; quote is its delimiter
	lexEndTag                    // in an end tag
	lexDecl                      // in the XML declaration <?xml … ?>
	lexCDATAOpen                 // after "<!": only "[CDATA[" may follow
	lexCDATA                     // in a CDATA section
	lexRef                       // in an entity or character reference
)

// scanner is a byte-at-a-time XML lexer that knows just enough to find
// where each top-level element of the stream (each stanza) begins and
// ends, and to refuse what XMPP forbids (RFC 6120 §11.1). It never builds
// tokens; encoding/xml does that, after the scanner let the bytes pass.
//
// It follows the constructs in which '<' or '>' do not delimit tags
// (attribute values, CDATA); comments, DTDs and processing instructions
// are refused outright, so it cannot be led to believe a stanza ended
// while the decoder is still inside one.
type scanner struct {
	max int // bytes allowed per item: the stream header, or one stanza
	n   int // bytes of the current item so far

	depth   int  // open elements; the stream element is depth 1
	sawDecl bool // the XML declaration was read (only one, only first)

	state lexState
	back  lexState // where a reference returns to
	quote byte     // delimiter of the attribute value being read
	slash bool     // the previous byte of a start tag was '/'
	match int      // progress through "[CDATA[", "]]>" or "?>"
	ref   [10]byte // the name of the reference being read
	nref  int

	err error // sticky; a stream.Error
}

const cdataOpen = "[CDATA["

// step scans one byte. pass is false for bytes the decoder must not see
// (whitespace between stanzas); err is a policy-violation stream error.
func (s *scanner) step(b byte) (pass bool, err error) {
	if s.err != nil {
		return false, s.err
	}
	if s.state == lexText && s.depth == 1 && isSpace(b) {
		return false, nil
	}
	s.n++
	if s.n > s.max {
		return false, s.fail(fmt.Sprintf("stanza larger than %d bytes", s.max))
	}
	switch s.state {
	case lexText:
		switch b {
		case '<':
			if s.depth <= 1 {
				s.n = 1 // a stanza (or the stream header) starts here
			}
			s.state = lexLT
		case '&':
			s.back, s.state, s.nref = lexText, lexRef, 0
		}
	case lexLT:
		switch b {
		case '/':
			s.state = lexEndTag
		case '?':
			if s.depth > 0 || s.sawDecl {
				return false, s.fail("processing instructions are not allowed")
			}
			s.sawDecl, s.state, s.match = true, lexDecl, 0
		case '!':
			s.state, s.match = lexCDATAOpen, 0
		default:
			s.state, s.slash = lexStartTag, false
		}
	case lexStartTag:
		switch b {
		case '"', '\'':
			s.quote, s.state = b, lexAttr
		case '>':
			if s.slash { // <empty/>
				if s.depth == 1 {
					s.n = 0 // a stanza ended
				}
			} else {
				s.depth++
				if s.depth == 1 {
					s.n = 0 // the stream header ended
				}
			}
			s.state = lexText
		}
		s.slash = b == '/'
	case lexAttr:
		switch b {
		case s.quote:
			s.state, s.slash = lexStartTag, false
		case '&':
			s.back, s.state, s.nref = lexAttr, lexRef, 0
		}
	case lexEndTag:
		if b == '>' {
			s.depth--
			if s.depth == 1 {
				s.n = 0 // a stanza ended
			}
			if s.depth < 0 {
				s.depth = 0
			}
			s.state = lexText
		}
	case lexDecl:
		switch {
		case b == '?':
			s.match = 1
		case b == '>' && s.match == 1:
			s.state = lexText
		default:
			s.match = 0
		}
	case lexCDATAOpen:
		if b != cdataOpen[s.match] {
			return false, s.fail("DTDs, comments and declarations are not allowed")
		}
		s.match++
		if s.match == len(cdataOpen) {
			s.state, s.match = lexCDATA, 0
		}
	case lexCDATA:
		switch {
		case b == ']':
			if s.match < 2 {
				s.match++
			}
		case b == '>' && s.match == 2:
			s.state = lexText
		default:
			s.match = 0
		}
	case lexRef:
		if b == ';' {
			if !predefinedRef(s.ref[:s.nref]) {
				return false, s.fail(fmt.Sprintf("entity reference &%s; is not allowed", s.ref[:s.nref]))
			}
			s.state = s.back
			break
		}
		if s.nref == len(s.ref) {
			return false, s.fail("entity references are not allowed")
		}
		s.ref[s.nref] = b
		s.nref++
	}
	return true, nil
}

func (s *scanner) fail(text string) error {
	s.err = policyViolation(text)
	return s.err
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// predefinedRef accepts the five entities of XML itself and character
// references (&#38; &#x26;); every other name would need a DTD.
func predefinedRef(name []byte) bool {
	switch string(name) {
	case "lt", "gt", "amp", "apos", "quot":
		return true
	}
	if len(name) < 2 || name[0] != '#' {
		return false
	}
	digits, hex := name[1:], false
	if digits[0] == 'x' {
		digits, hex = digits[1:], true
	}
	if len(digits) == 0 {
		return false
	}
	for _, c := range digits {
		ok := '0' <= c && c <= '9' || hex && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
		if !ok {
			return false
		}
	}
	return true
}
