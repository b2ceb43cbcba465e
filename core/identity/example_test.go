package identity_test

import (
	"context"
	"fmt"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/identity"
)

// A Guard in front of any verifier: the second connect with the same
// assertion is answered from memory.
func ExampleGuard() {
	dev := &core.DevVerifier{Secret: []byte("example secret, not for production")}
	v := identity.Guard(dev, identity.GuardOptions{MaxConcurrent: 8})
	token := dev.Mint("alice@example.com", time.Hour)
	for range 2 {
		id, err := v.Verify(context.Background(), token)
		fmt.Println(id.Subject, err)
	}
	fmt.Printf("%+v\n", v.Stats())
	// Output:
	// alice@example.com <nil>
	// alice@example.com <nil>
	// {Hits:1 Misses:1 Busy:0 Cached:1}
}
