package xmpp

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// scan feeds s to a scanner of limit max and returns the bytes it passed
// and its error.
func scan(max int, s string) (string, error) {
	sc := scanner{max: max}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		pass, err := sc.step(s[i])
		if err != nil {
			return out.String(), err
		}
		if pass {
			out.WriteByte(s[i])
		}
	}
	return out.String(), nil
}

const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' to='1.d'>"

func TestScanner(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		ok       bool
	}{
		{"stanzas under the limit, many times", header + strings.Repeat("<message to='a'><body>"+strings.Repeat("x", 40)+"</body></message>", 100), 80, true},
		{"one stanza over", header + "<message to='a'><body>" + strings.Repeat("x", 80) + "</body></message>", 80, false},
		{"self-closing stanzas reset", header + strings.Repeat("<presence to='a' type='probe'/>", 100), 60, true},
		{"'>' and '/>' in attribute values", header + `<message to='a' x='/>' y=">"><body>hi</body></message>` + strings.Repeat("<a/>", 30), 200, true},
		{"CDATA with markup and ]]", header + "<message><body><![CDATA[ <a> ]] ] &lol; ]]></body></message>", 200, true},
		{"character references", header + "<message><body>&#38;&#x26;&amp;&lt;&gt;&apos;&quot;</body></message>", 200, true},
		{"bad character reference", header + "<message><body>&#xzz;</body></message>", 200, false},
		{"long reference", header + "<message><body>&aaaaaaaaaaaaaaaaaaaaaa;</body></message>", 200, false},
		{"DOCTYPE", "<!DOCTYPE x>" + header, 200, false},
		{"second XML declaration", header + "<?xml version='1.0'?>", 200, false},
		{"comment", header + "<!-- x -->", 200, false},
		{"header over the limit", "<stream:stream a='" + strings.Repeat("x", 100) + "'>", 80, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scan(tc.max, tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestScanner_DropsWhitespaceBetweenStanzas(t *testing.T) {
	out, err := scan(100, header+"  \n<a> x </a>\n\t <b/> ")
	if err != nil {
		t.Fatal(err)
	}
	if want := header + "<a> x </a><b/>"; out != want {
		t.Fatalf("passed %q, want %q", out, want)
	}
}

// FuzzScanner checks that the scanner and encoding/xml agree on where
// items end: whatever the scanner lets through, no token the decoder
// builds from it is longer than the limit.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{
		header + "<message to='a'><body>hi</body></message>",
		header + "<a x='>' y=\"/>\"/><b><![CDATA[<]]>]]></b>",
		header + "<a>&amp;&#38;&lol;</a>",
		header + "   <a/>  <b>text</b>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]>" + header,
	} {
		f.Add([]byte(s))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := scanner{max: max}
		var passed []byte
		for _, b := range in {
			pass, err := sc.step(b)
			if err != nil {
				break
			}
			if pass {
				passed = append(passed, b)
			}
		}
		d := xml.NewDecoder(bytes.NewReader(passed))
		for {
			tok, err := d.RawToken()
			if err != nil {
				return
			}
			switch tok := tok.(type) {
			case xml.CharData:
				if len(tok) > max {
					t.Fatalf("a %d-byte text token got through a %d-byte limit", len(tok), max)
				}
			case xml.StartElement:
				for _, a := range tok.Attr {
					if len(a.Value) > max {
						t.Fatalf("a %d-byte attribute got through a %d-byte limit", len(a.Value), max)
					}
				}
			case xml.Comment, xml.Directive:
				t.Fatalf("%T got through", tok)
			}
		}
	})
}
