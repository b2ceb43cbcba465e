package core

import "time"

// Grant is a user's permission for an app to see their status, under the
// PUID, the only user id the app ever sees.
type Grant struct {
	PUID       string
	UserID     string
	AppID      AppID
	UserString string // how the user appears to the app ("appear online as …")
	CreatedAt  time.Time
}

// User is a person, by the stable subject the identity provider vouches
// for, with the email for display.
type User struct {
	ID        string
	Email     string
	CreatedAt time.Time
}
