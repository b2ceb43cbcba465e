// Sampleapp is an AppService of Presence, small enough to read in ten
// minutes: it sends its users through the grant flow (PROTOCOL §6), shows
// their presence live on its page as an XMPP component through mellium
// (§7), or on the JSON channel with -json (§3), and sends live
// notifications from a form (§4). README.md's five-minute tour runs it:
//
//	presence apps add --domain 127.0.0.1:8090 --name "Sample app" --email you@example.com --verified
//	PRESENCE_API_KEY=$(presence apps activate 1 --json | jq -r .api_key) go run ./examples/sampleapp
//
// main.go is the page and the grant and notification calls; feed.go is
// the presence channel, reconnected whenever it drops.
package main
