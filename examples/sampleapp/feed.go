package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

// watch keeps the presence channel open for as long as ctx lives: as an
// XMPP component (PROTOCOL §7), or on the JSON channel (§3) with -json.
// A lost channel is opened again after a pause that doubles up to 10 s;
// what changed meanwhile waits at Presence and arrives first.
func (a *app) watch(ctx context.Context) {
	pause := 500 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		var err error
		if a.cfg.JSONChannel {
			err = a.watchJSON(ctx)
		} else {
			err = a.watchXMPP(ctx)
		}
		a.setChannel("lost, reconnecting")
		log.Printf("presence channel: %v", err)
		if time.Since(start) > time.Minute {
			pause = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Second)
	}
}

// presenceStanza is what a component reads of a <presence/>.
type presenceStanza struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	Show    string `xml:"show"`
	Status  string `xml:"status"`
}

// watchXMPP connects as component <app_id>.<xmpp domain> with the API key
// as the handshake secret. Users are <puid>@<xmpp domain>.
func (a *app) watchXMPP(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", a.cfg.XMPP)
	if err != nil {
		return err
	}
	defer nc.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	me := jid.MustParse(fmt.Sprintf("%d.%s", a.cfg.AppID, a.cfg.XMPPDomain))
	s, err := component.NewSession(hctx, me, []byte(a.cfg.Key), nc)
	if err != nil {
		return fmt.Errorf("component handshake: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	a.setChannel("connected (XMPP component " + me.String() + ")")
	return s.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		var st presenceStanza
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&st); err != nil {
			return err
		}
		if st.XMLName.Local != "presence" || st.Type == "error" {
			return nil
		}
		puid, _, _ := strings.Cut(st.From, "@")
		status := "online"
		switch {
		case st.Type == "unavailable":
			status = "offline"
		case st.Show != "":
			status = "unavailable"
		}
		a.setStatus(puid, status, st.Status, time.Now().UTC())
		return nil
	}))
}

// watchJSON opens ws://<presence>/<app_id>, sends the key, then reads
// arrays of updates.
func (a *app) watchJSON(ctx context.Context) error {
	u := strings.Replace(a.cfg.Presence, "http", "ws", 1) + fmt.Sprintf("/%d", a.cfg.AppID)
	c, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.WriteJSON(map[string]string{"key": a.cfg.Key}); err != nil {
		return err
	}
	var ok struct {
		Result bool   `json:"result"`
		Reason string `json:"reason"`
	}
	if err := c.ReadJSON(&ok); err != nil {
		return err
	}
	if !ok.Result {
		return fmt.Errorf("refused: %s", ok.Reason)
	}
	a.setChannel("connected (JSON channel " + u + ")")
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return err
		}
		var updates []struct {
			UID, Status, Message string
			At                   time.Time
		}
		if json.Unmarshal(data, &updates) != nil {
			continue // an answer object (this app sends no requests)
		}
		for _, up := range updates {
			a.setStatus(up.UID, up.Status, up.Message, up.At)
		}
	}
}
